"""Names shared by the widget and the reader (kept free of Qt and torch imports)."""

SUPPORT_METADATA = "universeg_support"  # layers made by the support-set reader carry this key
