"""The crudauth demo app: cookie sessions with CSRF on SQLite and in-memory stores."""
