#!/usr/bin/env bash
# One entry point for the series (see README.md):
#   bash run.sh series [NOTEBOOK...]   create .venv, generate the data, execute every notebook (or
#                        those given) in place (TUTORIAL_SCALE=default unless set): refreshes outputs
#                        and results/, then the README's results table (from results/default)
#   bash run.sh test [PATH...]   create .venv, run the helpers' tests and every notebook with nbval
#                        (TUTORIAL_SCALE=ci unless set; PATHs narrow it, e.g. notebooks)
#   bash run.sh lab      create .venv, open JupyterLab on notebooks/
# PYTHON=python3.12 picks the interpreter for .venv (3.10-3.13); REQUIREMENTS=requirements-colab.txt
# VENV=.venv-colab installs Colab's package set instead of the newest releases.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
REQUIREMENTS=${REQUIREMENTS:-requirements.txt}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    local py=${PYTHON:-python3}
    "$py" -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 13) else
      f"Python {v[0]}.{v[1]} found; TensorFlow needs 3.10-3.13: PYTHON=python3.12 bash run.sh ...")'
    "$py" -m venv "$VENV"
  fi
  # reinstall only when the requirements changed
  local stamp="$VENV/.requirements.sha256"
  local want; want=$(cat "$REQUIREMENTS" requirements.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$REQUIREMENTS"
    echo "$want" > "$stamp"
  fi
  export PATH="$PWD/$VENV/bin:$PATH" TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
}

case "${1:-}" in
  series)
    shift
    setup
    export TUTORIAL_SCALE=${TUTORIAL_SCALE:-default}
    if [ $# -eq 0 ]; then
      python -m helpers.datasets          # every data set of the scale; a lesson alone makes what it needs
      set -- notebooks/[0-9][0-9]_*.ipynb
    fi
    for nb in "$@"; do
      echo "== $nb (TUTORIAL_SCALE=$TUTORIAL_SCALE)"
      jupyter nbconvert --to notebook --execute --inplace --log-level=WARN \
        --ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.kernel_name=python3 "$nb"
    done
    python -m helpers.report.summary --write-readme   # the README's table, always from results/default
    ;;
  test)
    shift
    [ $# -gt 0 ] || set -- tests notebooks
    setup
    export TUTORIAL_SCALE=${TUTORIAL_SCALE:-ci}
    export TUTORIAL_CLAIMS=${TUTORIAL_CLAIMS:-strict}   # a machine-dependent claim that differs fails the run
    python -c 'import sys, tensorflow as tf, keras; print(f"== Python {sys.version.split()[0]}, TensorFlow {tf.__version__}, Keras {keras.__version__}")'
    python -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env --durations=12 "$@"
    ;;
  lab)
    setup
    jupyter lab notebooks/
    ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
