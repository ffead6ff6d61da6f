"""Loaded by the function servers that tests run on the production token path.

Points firebase-admin's certificate URL at the tests' own certificate server: the only change
to the production verification path, which then checks signatures, expiry, audience and issuer
exactly as it does on Google Cloud.
"""

import os

_url = os.environ.get("TEST_ID_TOKEN_CERT_URI")
if _url:
    import firebase_admin._token_gen as _token_gen

    _token_gen.ID_TOKEN_CERT_URI = _url
