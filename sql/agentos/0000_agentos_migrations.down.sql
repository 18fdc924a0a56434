-- agentos v0 down.
DROP TABLE IF EXISTS agentos_migrations;
