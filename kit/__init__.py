"""Plumbing shared by app/ and the domain packages: HTTP problem types, JSON-schema
field types, the request transaction. Imports only storage/ and libraries."""
