"""Training of the model: synthetic and real tasks, episodic in-context training, export of weights.

Installed as ``napari_universeg.training`` (the folder training/ of the repository, mapped in
pyproject.toml) with the console scripts napari-universeg-train, -prepare-data, -export and
-gallery; run it from a source checkout (``pip install -e ".[training]"``). Without installing,
``PYTHONPATH=src:. python -m training.train`` from the repository root runs the same code
(training/gpu_run.sh). The plugin never imports this package (tests/test_structure.py).
"""
