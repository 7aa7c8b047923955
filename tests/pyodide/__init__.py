"""The Pyodide stage: src/entry.py under the runtime's Python, driven from pyodide_stage.py."""
