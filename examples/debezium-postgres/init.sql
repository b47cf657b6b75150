-- The source database of docker-compose's CDC pipeline (and of the test that runs the same wiring).
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, tier text);
ALTER TABLE customers REPLICA IDENTITY FULL;
INSERT INTO customers VALUES (1, 'ada', 'gold'), (2, 'bob', NULL), (3, 'cy', 'silver');
