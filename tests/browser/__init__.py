"""The browser stage: CORS as a real headless Chromium sees it, driven from browser_stage.py."""
