"""What the four scripts share, one concern a module:

- options:      the common flags, settings (flag > environment > .env) and argparse types
- csv_input:    reading a CSV file: encodings, delimiters, header aliases, rows with line numbers
- user_record:  a user's columns: parse a cell, compare it with the proxy, describe a change
- snapshot:     one listing of the proxy's users, teams (and keys, models), indexed for planners
- results:      result, error and undo files, and the journal of creates in flight
- runner:       parallel work, progress, signals
- creation:     creating users, in bulk where the release can (add_user.py and sync_user.py)
- lease:        one writing run per proxy, whoever starts it: a lease kept on the proxy
- removal:      deleting, blocking, purging and reinstating users (del_user.py and sync_user.py)
- exits:        exit codes, and turning what escapes a script into one
- redaction:    keeping keys and the master key out of every message and log

The scripts reach the proxy only through litellm_client.
"""

__version__ = "3.0.0"  # the tools' version: --version, run reports, the package (pyproject.toml)
