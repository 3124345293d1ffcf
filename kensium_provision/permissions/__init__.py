"""IAM as data: what each step type calls in AWS (`declared`), the IAM action of each call (`actions`), the
least-privilege policy of a set of checklists (`policy`), and the permission preflight (`preflight`)."""
