-- langgraph v0 down: the version table goes last.
DROP TABLE IF EXISTS checkpoint_migrations;
