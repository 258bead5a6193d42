#!/bin/sh
# The whole full profile, then the report (about two hours on two idle cores; see
# validation/README.md). Run from the repository root:
#   nohup sh validation/full_profile.sh > validation/results/full_profile.log 2>&1 &
# Safe to rerun after an interruption: finished experiments are skipped and approx resumes.
PY=${PYTHON:-.venv/bin/python}
R=validation/results
mkdir -p $R
done_() { grep -q '"status": "completed"' "$R/$1-full/manifest.json" 2>/dev/null; }
done_ theorem || $PY validation/run.py theorem --profile full > $R/theorem-full.log 2>&1
done_ time-to-target || $PY validation/run.py time-to-target --profile full > $R/time-to-target-full.log 2>&1
done_ gd || $PY validation/run.py gd --profile full > $R/gd-full.log 2>&1
done_ pde || $PY validation/run.py pde --profile full > $R/pde-full.log 2>&1
done_ second-order || $PY validation/run.py second-order --profile full --resume > $R/second-order-full.log 2>&1
$PY validation/run.py approx --profile full --resume >> $R/approx-full.log 2>&1
$PY validation/run.py report --profile full > $R/report-full.log 2>&1
