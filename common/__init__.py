"""What the four scripts share, one concern a module:

- options:      the common flags, settings (flag > environment > .env) and argparse types
- script:       one script run, start to end: signals, the exit code of whatever escapes it, its report
- exits:        exit codes, the two stops before any change, the files a run wrote
- run_report:   --report FILE: what a run did, as JSON for monitors
- redaction:    keeping keys and the master key out of every message and log
- csv_input:    reading a CSV file: encodings, delimiters, header aliases, rows with line numbers
- addresses:    emails as the proxy holds them and as a file names them, and how they match
- user_record:  a user's columns, one Field each: parse a cell, compare it with the proxy, send a change
- team_record:  teams as code: the teams file, a team's columns, the teams plan (pure)
- snapshot:     the proxy's users, teams (and keys, models), read once, indexed for the planners
- actions:      the one vocabulary of change: add, update, reinstate, block, delete, purge
- additions:    add_user.py's plan and its application
- deletions:    del_user.py's plan and its application
- sync_plan:    what a sync would change: pure, from the file's rows and a snapshot
- sync_apply:   applying a sync plan, with a record per user of what was planned and done
- team_apply:   applying a teams plan, before any user is changed; never deleting a team
- listing:      what list_user.py shows: user and team columns, --columns, --where, the writers
- creation:     creating users, in bulk where the release can (add_user.py and sync_user.py)
- removal:      deleting, blocking, purging and reinstating users (del_user.py and sync_user.py)
- runner:       parallel work on --workers threads, progress, the one stop every phase obeys
- lease:        one writing run per proxy, whoever starts it: a lease kept on the proxy
- journal:      creates and deletions in flight, so that the next run finishes what a killed one left
- undo:         undo files, written before the first change
- results:      result and error files, and the notes a run ends with

The scripts reach the proxy only through litellm_client, and leave every release decision to it.
"""

__version__ = "3.0.0"  # the tools' version: --version, run reports, the package (pyproject.toml)
