"""`kprov check client --all`: the whole fleet checked over one snapshot of batched reads.

- `check`: `check_fleet`, every recorded client through the install checklist's real step types;
- `snapshot`: the reads made once for the fleet (and per client only the bucket's two S3 reads);
- `facts`: the step types' fact readers (`steps.facts`) and the password manager answered from it;
- `model`: what a fleet check is asked (`FleetRequest`) and answers (`FleetReport`).
"""
