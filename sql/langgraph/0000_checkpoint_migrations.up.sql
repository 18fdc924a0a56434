-- langgraph v0: the version table LangGraph's setup() reads and writes.
CREATE TABLE IF NOT EXISTS checkpoint_migrations (
    v INTEGER PRIMARY KEY
);
