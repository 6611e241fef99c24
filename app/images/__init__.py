"""Product images: upload receiving, processing glue, URLs (routes in app/routes/images.py)."""
