"""The forensic lookahead audit, one module per check (`truncation`, `serving`, `poisoning`), the helpers
they share (`compare`), the report (`report`) and the function that runs them (`run.audit_run`)."""
