"""The hash-chained journal of every run, and the history read from it.

`files` (where a run's journal and head live), `writer` (JournalWriter, the record format),
`shipping` (a copy of each record in CloudWatch Logs), `reader` (read_run, list_runs, filter_runs),
`verify` (verify_run, verify_all), `resume` (resume_point), `history` (runs and audit, for people).
"""
