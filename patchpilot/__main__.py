from patchpilot.cli import app

app(prog_name="patchpilot")
