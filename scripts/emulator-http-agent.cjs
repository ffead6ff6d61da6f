// Preloaded into the Firebase CLI (NODE_OPTIONS=--require) by scripts/run and the tests.
//
// The Functions emulator forwards each request to its Python worker (functions-framework's
// gunicorn) through Node's global HTTP agent, which keeps idle connections for 5 s, while
// gunicorn closes them after 2 s. A request written as gunicorn closes the connection fails
// with "socket hang up": the emulator answers 500 and kills the worker, so the next request is
// a cold start (seen in the browser tests). A fresh loopback connection per request avoids it.
const http = require("http");

http.globalAgent = new http.Agent({ keepAlive: false });
