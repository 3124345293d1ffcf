"""The checklist language: schema, loader, templates, answers files, the catalog and `validate`."""
