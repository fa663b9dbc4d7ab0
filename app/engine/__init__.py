"""Generation engines behind a small interface (`app.engine.base.Engine`)."""
