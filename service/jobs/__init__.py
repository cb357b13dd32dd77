"""Background jobs (backfills and audits): the persistent queue (`store`), the single worker that runs it
(`runner`), the child process that does each job's work (`child`) and the messages it sends (`messages`),
and what an HTTP request must satisfy before it is queued (`admission`)."""
