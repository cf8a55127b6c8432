#!/bin/sh
# check-drift.sh: 0 in step, 5 drifted, anything else the check itself failed
# --remove block, as sync-users.sh: the users the sync blocked are no drift (without it, each would be a deletion
# still to make, mailed every hour). No --purge-after: a purge falling due is the sync's own work, not drift (with it,
# the check would mail every hour from the end of a user's 30 days until the next night's sync purges the user).
python sync_user.py --check --remove block --quiet > drift.txt 2>&1
status=$?
case $status in
  0) ;;
  5) mail -s "LiteLLM: the proxy differs from user_list.csv" admin@example.com < drift.txt ;;
  *) mail -s "LiteLLM: the drift check failed (exit $status)" admin@example.com < drift.txt ;;
esac
exit $status
