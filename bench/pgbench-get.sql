-- The statement GET /items/{id} runs (api/src/db.rs SELECT), ids uniform over the seeded rows.
\set id random(1, :items)
SELECT id, nom, prix FROM items WHERE id = :id;
