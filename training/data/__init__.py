"""Real training tasks: the source manifest (sources.csv) and the script that builds the cache."""
