#!/bin/sh
# sync-users.sh: the nightly sync. Export your source of truth to user_list.csv first, then:
python sync_user.py --remove block --purge-after 30d --quiet --dry-run > plan.txt 2>&1
case $? in
  0) ;;                                            # the plan is fine
  4) mail -s "LiteLLM sync: too many removals; not applied" admin@example.com < plan.txt; exit 4 ;;
  *) mail -s "LiteLLM sync: the plan failed" admin@example.com < plan.txt; exit 1 ;;
esac
python sync_user.py --remove block --purge-after 30d --quiet --output-dir results
status=$?
[ $status -eq 0 ] || mail -s "LiteLLM sync: exit $status, see results/user_sync_result.csv" admin@example.com < /dev/null
exit $status
