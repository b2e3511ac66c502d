from cargohold.cli.main import app

app()
