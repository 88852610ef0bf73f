-- The OFAC SDN list (US Treasury sanctions), held locally so every pod screens against
-- the same version without calling out. Additive only, like every migration here.
--
-- A load (`dossier` via store::sanctions) inserts the new list's rows, makes it the
-- active list and deletes the previous lists' rows in ONE transaction, so readers see
-- the old list or the new one, never half of one. The sanctions_lists rows are kept:
-- they are the history of loads (which file, when, how many entries, its SHA-256).

CREATE TABLE sanctions_lists (
    id           bigserial PRIMARY KEY,
    loaded_at    timestamptz NOT NULL DEFAULT now(),
    -- Where the files came from (the directory they were loaded from).
    source       text NOT NULL,
    entries      int NOT NULL,
    aliases      int NOT NULL DEFAULT 0,
    addresses    int NOT NULL DEFAULT 0,
    -- Malformed rows of the files, skipped with a warning.
    skipped_rows int NOT NULL DEFAULT 0,
    -- SHA-256 (hex) of the files, to tell which publication a list is.
    sha256       text NOT NULL,
    active       boolean NOT NULL DEFAULT false
);

-- At most one active list.
CREATE UNIQUE INDEX sanctions_lists_active_idx ON sanctions_lists (active) WHERE active;

-- One row per name: the entry's primary name (alt_num 0) and each alias (alt.csv).
-- kind and program are repeated on alias rows so each row can be read on its own.
CREATE TABLE sanctions_entries (
    list_id  bigint NOT NULL REFERENCES sanctions_lists (id) ON DELETE CASCADE,
    ent_num  bigint NOT NULL,
    alt_num  bigint NOT NULL DEFAULT 0,
    is_alias boolean NOT NULL DEFAULT false,
    -- As written in the list: individuals are "LAST, First Middle".
    name     text NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('individual', 'entity', 'vessel', 'aircraft')),
    -- Sanctions programs, "; "-separated ("SDGT; IRGC").
    program  text NOT NULL DEFAULT '',
    -- "aka", "fka", "nka" for aliases; empty for primary names.
    alt_type text NOT NULL DEFAULT '',
    title    text NOT NULL DEFAULT '',
    remarks  text NOT NULL DEFAULT '',
    -- Vessel columns (call sign, type, tonnage, GRT, flag, owner) of vessel entries.
    vessel   jsonb,
    PRIMARY KEY (list_id, ent_num, alt_num),
    CHECK (is_alias = (alt_num <> 0))
);

-- Look-ups by name from SQL (`WHERE upper(name) LIKE 'MORALES%'`).
CREATE INDEX sanctions_entries_name_idx ON sanctions_entries (upper(name) text_pattern_ops);

-- add.csv: addresses of entries.
CREATE TABLE sanctions_addresses (
    list_id  bigint NOT NULL REFERENCES sanctions_lists (id) ON DELETE CASCADE,
    ent_num  bigint NOT NULL,
    add_num  bigint NOT NULL,
    address  text NOT NULL DEFAULT '',
    -- City, state or province and postal code, as one field.
    city     text NOT NULL DEFAULT '',
    country  text NOT NULL DEFAULT '',
    remarks  text NOT NULL DEFAULT '',
    PRIMARY KEY (list_id, ent_num, add_num)
);
