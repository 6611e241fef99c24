"""Sample data for a fresh install, demos and benchmarks: a realistic catalogue,
customers and a year of orders (shop.py). Not part of the running shop."""
