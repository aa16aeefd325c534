-- SAML sign-in (issue 5): what a session keeps from the assertion.

-- When the IdP authenticated the person (AuthnStatement/@AuthnInstant) and
-- the attributes it released, as {"name": ["value", ...]}.
ALTER TABLE sessions ADD COLUMN authn_instant timestamptz;
ALTER TABLE sessions ADD COLUMN attributes jsonb
    CHECK (attributes IS NULL OR jsonb_typeof(attributes) = 'object');

-- Sweeping answered or abandoned sign-ins by age.
CREATE INDEX saml_requests_used ON saml_requests (used_at)
    WHERE used_at IS NOT NULL;
