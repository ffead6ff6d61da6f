"""Loaded by the function servers that tests run on the production token path.

Points firebase-admin's certificate URL (and google-auth's OIDC certificate URL) at the tests'
own certificate server: the only change to the production verification paths, which then checks signatures, expiry, audience and issuer
exactly as it does on Google Cloud.
"""

import os

_url = os.environ.get("TEST_ID_TOKEN_CERT_URI")
if _url:
    import firebase_admin._token_gen as _token_gen

    _token_gen.ID_TOKEN_CERT_URI = _url

_oauth2_url = os.environ.get("TEST_OAUTH2_CERT_URI")
if _oauth2_url:
    import google.oauth2.id_token as _id_token

    _id_token._GOOGLE_OAUTH2_CERTS_URL = _oauth2_url  # Google's OIDC certificates, for replay_billing
