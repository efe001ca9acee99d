"""Confluence: the client (over atlassian-python-api) and a Confluence-shaped test server."""
