"""Runtime-free core of authpi-worker: nothing here imports `workers`, `js` or `pyodide`."""
