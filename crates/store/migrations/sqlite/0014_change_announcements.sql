-- PostgreSQL's migration 14 adds triggers that announce catalog and token changes to
-- every instance (NOTIFY). SQLite has no such channel: a server on SQLite checks tokens
-- and the catalog version in the database on every request instead. This migration
-- keeps both backends' version numbers equal.
SELECT 1;
