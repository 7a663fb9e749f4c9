"""The benchmark harness: `python -m benchmarks` (see benchmarks/__main__.py).

Never run as unit tests: nothing here asserts a speed. `harness` times,
`cases` defines what is timed, `report` renders results.json, the table and
RESULTS.md.
"""
