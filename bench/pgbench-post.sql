-- The statement POST /items runs (api/src/db.rs INSERT), with the teaching stack's own values.
INSERT INTO items (nom, prix) VALUES ('Test', 10.5) RETURNING id, nom, prix;
