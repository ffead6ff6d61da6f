"""Loaded by the function servers that tests run on the production token path.

Points firebase-admin's key URLs at the tests' own servers: Google's ID-token certificates
(``TEST_ID_TOKEN_CERT_URI``), App Check's JWKS and ``verifyAppCheckToken`` API
(``TEST_APP_CHECK_JWKS_URL``, ``TEST_APP_CHECK_VERIFY_URL``), and google-auth's OIDC
certificate URL (``TEST_OAUTH2_CERT_URI``, for replay_billing). That is the only change to the
production verification paths, which then check signatures, expiry, audience and issuer
exactly as they do on Google Cloud.
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

_jwks = os.environ.get("TEST_APP_CHECK_JWKS_URL")
if _jwks:
    from firebase_admin import app_check as _app_check

    _app_check._AppCheckService._JWKS_URL = _jwks
    _app_check._AppCheckService._VERIFY_URL_FORMAT = os.environ["TEST_APP_CHECK_VERIFY_URL"]
