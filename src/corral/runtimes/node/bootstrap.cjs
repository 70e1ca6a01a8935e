// Corral's Node.js runtime: the loop inside an environment, shaped like aws-lambda-ric's.
//
// Owns: loading the handler (CommonJS, ES modules), the Runtime API conversation, the
// context object, Lambda's error bodies and console format. Not: sandboxing, timeouts,
// START/END/REPORT lines (the platform's). Plain Node, no dependencies: run as
// `node [memory flags] bootstrap.cjs`, cwd = the code directory; reads
// AWS_LAMBDA_RUNTIME_API, _HANDLER, LAMBDA_TASK_ROOT and the AWS_LAMBDA_* variables.
//
// Wire format: Runtime API 2018-06-01, HTTP/1.1 on one keep-alive TCP connection
// (`net`, TCP_NODELAY), reconnecting when the server closed it. Corral's Runtime API
// always answers with Content-Length, which is all this client reads. `http` would cost
// a few ms more at start and an agent per request; nothing here needs it.
//
// Error bodies are aws-lambda-ric's: {errorType, errorMessage, trace: [stack lines]}
// (Node's Lambda runtimes name the stack `trace`, not Python's `stackTrace`).
'use strict';

const net = require('net');
const path = require('path');
const fs = require('fs');
const util = require('util');

const API = '/2018-06-01/runtime';
const NEXT = API + '/invocation/next';

// ---- errors ---------------------------------------------------------------------------

class RuntimeFault extends Error {
  constructor(type, message) {
    super(message);
    this.name = type;
  }
}

const fault = (type) => (message) => new RuntimeFault(type, message);
const ImportModuleError = fault('Runtime.ImportModuleError');
const HandlerNotFound = fault('Runtime.HandlerNotFound');
const MalformedHandlerName = fault('Runtime.MalformedHandlerName');
const UserCodeSyntaxError = fault('Runtime.UserCodeSyntaxError');
const UnhandledPromiseRejection = fault('Runtime.UnhandledPromiseRejection');

function isError(value) {
  return (
    util.types.isNativeError(value) ||
    (value !== null && typeof value === 'object' && typeof value.name === 'string' &&
      typeof value.message === 'string' && typeof value.stack === 'string')
  );
}

/** aws-lambda-ric's toRapidResponse: what the Runtime API's error endpoints receive. */
function errorBody(error) {
  try {
    if (isError(error)) {
      return {
        errorType: String(error.name).replace(/\x7F/g, '%7F'),
        errorMessage: String(error.message).replace(/\x7F/g, '%7F'),
        trace: String(error.stack).replace(/\x7F/g, '%7F').split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving ' +
        'one or more of its message, name, and stack',
    };
  }
}

// ---- console: Lambda's text format ----------------------------------------------------

let currentRequestId;

function patchConsole() {
  const write = (level) =>
    function (...args) {
      const line = `${new Date().toISOString()}\t${currentRequestId}\t${level}\t${util.format(...args)}`;
      process.stdout.write(line.replace(/\n/g, '\r') + '\n');
    };
  console.trace = write('TRACE');
  console.debug = write('DEBUG');
  console.info = write('INFO');
  console.log = write('INFO');
  console.warn = write('WARN');
  console.error = write('ERROR');
  console.fatal = write('FATAL');
}

// ---- the Runtime API client -----------------------------------------------------------

class RuntimeApi {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    this.host = address.slice(0, colon).replace(/^\[|\]$/g, '');
    this.port = Number(address.slice(colon + 1));
    this.socket = null;
    this.pending = null; // {resolve, reject, chunks, length, sent}
  }

  _connect() {
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true });
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this._data(chunk));
    socket.on('error', (err) => this._drop(socket, err));
    socket.on('close', () => this._drop(socket, new Error('Runtime API closed the connection')));
    this.socket = socket;
  }

  _drop(socket, err) {
    if (this.socket !== socket) return;
    this.socket = null;
    const pending = this.pending;
    if (pending) {
      this.pending = null;
      if (pending.received === 0 && !pending.retried) {
        pending.retried = true; // a kept-alive connection the server had closed
        this._send(pending);
      } else {
        pending.reject(err);
      }
    }
  }

  _data(chunk) {
    const p = this.pending;
    if (!p) return;
    p.received += chunk.length;
    p.buffer = p.buffer.length ? Buffer.concat([p.buffer, chunk]) : chunk;
    if (p.status === undefined) {
      const end = p.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = p.buffer.toString('latin1', 0, end).split('\r\n');
      p.status = Number(lines[0].split(' ')[1]);
      p.headers = {};
      for (let i = 1; i < lines.length; i++) {
        const colon = lines[i].indexOf(':');
        p.headers[lines[i].slice(0, colon).trim().toLowerCase()] = lines[i].slice(colon + 1).trim();
      }
      p.length = Number(p.headers['content-length'] || 0);
      p.buffer = p.buffer.subarray(end + 4);
    }
    if (p.buffer.length >= p.length) {
      this.pending = null;
      p.resolve({ status: p.status, headers: p.headers, body: p.buffer.subarray(0, p.length) });
    }
  }

  _send(p) {
    if (!this.socket) this._connect();
    p.buffer = Buffer.alloc(0);
    p.received = 0;
    p.status = undefined;
    this.pending = p;
    this.socket.ref(); // a request in flight keeps the process alive (see invoke)
    this.socket.write(p.request);
  }

  request(method, target, body, extraHeaders) {
    return new Promise((resolve, reject) => {
      let head = `${method} ${target} HTTP/1.1\r\nHost: ${this.host}\r\n`;
      for (const [name, value] of Object.entries(extraHeaders || {})) head += `${name}: ${value}\r\n`;
      const payload = body === undefined ? null : Buffer.from(body);
      if (payload) head += `Content-Type: application/json\r\nContent-Length: ${payload.length}\r\n`;
      const request = payload ? Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), payload]) : head + '\r\n';
      this._send({ request, resolve, reject, retried: false });
    });
  }

  /** A streaming-mode response (awslambda.streamifyResponse): the head now, then each
   * chunk as the handler writes it, and an error, if any, as Lambda's trailers. */
  stream(requestId, contentType) {
    const answer = new Promise((resolve, reject) => {
      const head =
        `POST ${API}/invocation/${requestId}/response HTTP/1.1\r\nHost: ${this.host}\r\n` +
        'Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n' +
        'Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n' +
        `Content-Type: ${contentType}\r\n\r\n`;
      this._send({ request: head, resolve, reject, retried: true });
    });
    const socket = this.socket;
    return {
      write(chunk) {
        if (chunk.length) socket.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, CRLF]));
      },
      end(error) {
        let tail = '0\r\n';
        if (error !== undefined) {
          const body = errorBody(error);
          const encoded = Buffer.from(JSON.stringify(body)).toString('base64');
          tail += `Lambda-Runtime-Function-Error-Type: ${body.errorType}\r\n`;
          tail += `Lambda-Runtime-Function-Error-Body: ${encoded}\r\n`;
        }
        socket.write(tail + '\r\n');
        return answer;
      },
    };
  }

  ref(on) {
    if (this.socket) on ? this.socket.ref() : this.socket.unref();
  }

  async next() {
    const answer = await this.request('GET', NEXT);
    if (answer.status !== 200) throw new Error(`GET ${NEXT}: HTTP ${answer.status}`);
    return answer;
  }

  async respond(requestId, body) {
    await this.request('POST', `${API}/invocation/${requestId}/response`, body);
  }

  async error(requestId, error) {
    const body = errorBody(error);
    const target = requestId ? `${API}/invocation/${requestId}/error` : `${API}/init/error`;
    await this.request('POST', target, JSON.stringify(body), {
      'Lambda-Runtime-Function-Error-Type': body.errorType,
    });
  }
}

// ---- response streaming: the `awslambda` global of Lambda's Node.js runtimes ----------

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
const CRLF = Buffer.from('\r\n');

globalThis.awslambda = {
  streamifyResponse(handler, options) {
    handler[STREAMING] = 'response';
    handler.highWaterMark = options && options.highWaterMark;
    return handler;
  },
  HttpResponseStream: {
    // a function URL's status and headers, then 8 NUL bytes, then the body
    from(stream, prelude) {
      stream.setContentType('application/vnd.awslambda.http-integration-response');
      stream.write(JSON.stringify(prelude));
      stream.write(new Uint8Array(8));
      return stream;
    },
  },
};

function responseStream(api, requestId, highWaterMark) {
  const { Writable } = require('stream');
  let contentType = 'application/octet-stream';
  let wire = null;
  const open = () => wire || (wire = api.stream(requestId, contentType));
  const stream = new Writable({
    highWaterMark,
    write(chunk, _encoding, callback) {
      open().write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      callback();
    },
  });
  stream.setContentType = (type) => {
    contentType = type;
  };
  stream.started = () => wire !== null;
  stream.close = (error) => open().end(error);
  return stream;
}

function invokeStreaming(api, handler, answer, env, event, done) {
  const requestId = answer.headers['lambda-runtime-aws-request-id'];
  const stream = responseStream(api, requestId, handler.highWaterMark);
  let settled = false;
  const fail = (error) => {
    if (settled) return;
    settled = true;
    console.error('Invoke Error', '\t', JSON.stringify(errorBody(error)));
    const sent = stream.started() ? stream.close(error) : api.error(requestId, error);
    sent.then(done, fatal);
  };
  stream.on('finish', () => {
    if (settled) return;
    settled = true;
    stream.close().then(done, fatal);
  });
  stream.on('error', fail);
  onFatal = (error, code) => {
    if (settled) return exitWith(code);
    settled = true;
    const sent = stream.started() ? stream.close(error) : api.error(requestId, error);
    sent.then(() => exitWith(code), () => exitWith(code));
  };
  const context = makeContext(answer.headers, env, () => {});
  let result;
  try {
    result = handler(event, stream, context);
  } catch (e) {
    return fail(e);
  }
  Promise.resolve(result).catch((e) => fail(e === undefined || e === null ? new Error(String(e)) : e));
}

// ---- loading the handler --------------------------------------------------------------

function hasTypeModule(file) {
  // the nearest package.json decides, as Node itself does
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    try {
      return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).type === 'module';
    } catch (err) {
      if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') return false;
    }
    if (dir === path.dirname(dir)) return false;
  }
}

async function loadModule(file, asModule) {
  if (asModule) {
    const { pathToFileURL } = require('url');
    return import(pathToFileURL(file).href);
  }
  return require(file);
}

async function loadUserModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const candidates = [
    [base + '.js', null],
    [base + '.mjs', true],
    [base + '.cjs', false],
  ];
  let self = true; // whether a missing module is the handler's module itself
  try {
    for (const [file, asModule] of candidates) {
      if (fs.existsSync(file)) {
        self = false;
        return await loadModule(file, asModule === null ? hasTypeModule(file) : asModule);
      }
    }
    // a package or a directory with an index, resolved the way require() does
    const resolved = require.resolve(moduleName, { paths: [path.resolve(appRoot, moduleRoot)] });
    self = false;
    return require(resolved);
  } catch (err) {
    if (err instanceof SyntaxError) throw UserCodeSyntaxError(`${err.name}: ${err.message}`);
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      const missing = self ? `Cannot find module '${moduleName}'` : err.message;
      const e = ImportModuleError(`Error: ${missing}`);
      e.stack = `${e.name}: ${e.message}\n` + String(err.stack).split('\n').slice(1).join('\n');
      throw e;
    }
    throw err;
  }
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes('..')) throw MalformedHandlerName("'..' is not allowed in handler name.");
  const slash = fullHandler.lastIndexOf('/');
  const moduleRoot = fullHandler.slice(0, slash + 1);
  const match = fullHandler.slice(slash + 1).match(/^([^.]*)\.(.*)$/);
  if (!match) throw MalformedHandlerName('Bad handler');
  const [, moduleName, handlerPath] = match;
  const app = await loadUserModule(appRoot, moduleRoot, moduleName);
  let handler = app;
  for (const part of handlerPath.split('.')) {
    handler = handler === undefined || handler === null ? undefined : handler[part];
  }
  // an ES module that was itself required as CommonJS may carry its exports on `default`
  if (handler === undefined && app && app.default && handlerPath.indexOf('.') < 0) {
    handler = app.default[handlerPath];
  }
  if (handler === undefined || handler === null) {
    throw HandlerNotFound(`${fullHandler} is undefined or not exported`);
  }
  if (typeof handler !== 'function') throw HandlerNotFound(`${fullHandler} is not a function`);
  if (NODE_MAJOR >= 24 && handler[STREAMING] !== 'response' && handler.length >= 3) {
    // Lambda's Node.js 24 refuses handlers that take a callback, at init
    throw fault('Runtime.CallbackHandlerDeprecated')(
      'ERROR: AWS Lambda has removed support for callback-based function handlers starting ' +
        'with Node.js 24. You need to modify this function to use a supported handler ' +
        'signature to use Node.js 24 or later. For more information see ' +
        'https://docs.aws.amazon.com/lambda/latest/dg/nodejs-handler.html.',
    );
  }
  return handler;
}

// ---- one invocation -------------------------------------------------------------------

function parseJsonHeader(value) {
  if (!value) return undefined;
  try {
    return JSON.parse(value);
  } catch (_) {
    return undefined;
  }
}

function makeContext(headers, env, settle) {
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseJsonHeader(headers['lambda-runtime-client-context']),
    identity: parseJsonHeader(headers['lambda-runtime-cognito-identity']),
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
  if (NODE_MAJOR >= 24) {
    delete context.callbackWaitsForEmptyEventLoop; // Node.js 24 has no callback handlers
    return context;
  }
  // the legacy context methods, which do not wait for the event loop
  context.succeed = (result) => settle(null, result, false);
  context.fail = (err) => settle(err === undefined || err === null ? 'handled' : err, undefined, false);
  context.done = (err, result) => settle(err, result, false);
  return context;
}

function serialize(result) {
  try {
    return JSON.stringify(result === undefined ? null : result);
  } catch (_) {
    throw new Error('Unable to stringify response body');
  }
}

function invoke(api, handler, answer, env) {
  return new Promise((done) => {
    const requestId = answer.headers['lambda-runtime-aws-request-id'];
    let settled = false;
    const post = (err, result) => {
      let send;
      if (err !== null && err !== undefined) {
        console.error('Invoke Error', '\t', JSON.stringify(errorBody(err)));
        send = api.error(requestId, err);
      } else {
        let body;
        try {
          body = serialize(result);
        } catch (e) {
          send = api.error(requestId, e);
        }
        if (!send) send = api.respond(requestId, body);
      }
      send.then(done, (e) => fatal(e));
    };
    // While the handler runs, our idle socket does not keep the process alive: when the
    // event loop drains before the handler has answered (a callback never called, a
    // promise never settled), the answer is null, as aws-lambda-ric's beforeExit listener.
    const drained = () => settle(null, undefined, false);
    const settle = (err, result, mayWait) => {
      if (settled) return;
      settled = true;
      process.removeListener('beforeExit', drained);
      const ok = err === null || err === undefined;
      if (ok && mayWait && context.callbackWaitsForEmptyEventLoop) {
        // Lambda answers a callback's result only once the event loop is empty: post
        // when Node says nothing else is left. Errors are posted at once, as in ric.
        process.once('beforeExit', () => post(err, result));
      } else {
        post(err, result);
      }
    };
    const context = makeContext(answer.headers, env, settle);
    onFatal = (error, code) => {
      if (settled) return exitWith(code);
      settled = true;
      api.error(requestId, error).then(() => exitWith(code), () => exitWith(code));
    };
    let event;
    try {
      event = JSON.parse(answer.body.toString('utf8'));
    } catch (e) {
      return settle(fault('Runtime.UnmarshalError')(`Unable to parse input as json: ${e.message}`), undefined, false);
    }
    if (handler[STREAMING] === 'response') return invokeStreaming(api, handler, answer, env, event, done);
    let result;
    api.ref(false);
    process.once('beforeExit', drained);
    try {
      result = handler(event, context, (err, value) => settle(err, value, true));
    } catch (e) {
      return settle(e, undefined, false);
    }
    if (result && typeof result.then === 'function') {
      result.then(
        (value) => settle(null, value, false),
        (e) => settle(e === undefined || e === null ? new Error(String(e)) : e, undefined, false),
      );
    }
  });
}

// ---- process-wide failures ------------------------------------------------------------

let onFatal = null; // set per invocation; at init, errors go to /init/error

function exitWith(code) {
  process.exit(code);
}

function fatal(err) {
  process.stderr.write(`corral node runtime: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

function installProcessHandlers(api) {
  process.on('uncaughtException', (error) => {
    console.error('Uncaught Exception', '\t', JSON.stringify(errorBody(error)));
    if (onFatal) return onFatal(error, 129);
    api.error(null, error).then(() => exitWith(129), () => exitWith(129));
  });
  process.on('unhandledRejection', (reason) => {
    const shown = isError(reason) ? `${reason.name}: ${reason.message}` : String(reason);
    const error = UnhandledPromiseRejection(shown);
    error.reason = reason;
    console.error('Unhandled Promise Rejection', '\t', JSON.stringify(errorBody(error)));
    if (onFatal) return onFatal(error, 128);
    api.error(null, error).then(() => exitWith(128), () => exitWith(128));
  });
}

// ---- main -----------------------------------------------------------------------------

function setNodePath(env) {
  if (env.NODE_PATH) return;
  const opt = env.CORRAL_OPT_DIR || '/opt';
  const major = process.versions.node.split('.')[0];
  const runtimeDir = path.resolve(__dirname);
  env.NODE_PATH = [
    `${opt}/nodejs/node${major}/node_modules`,
    `${opt}/nodejs/node_modules`,
    `${runtimeDir}/node_modules`,
    runtimeDir,
    env.LAMBDA_TASK_ROOT || process.cwd(),
  ].join(':');
  require('module').Module._initPaths();
}

async function main() {
  const env = process.env;
  const api = new RuntimeApi(env.AWS_LAMBDA_RUNTIME_API);
  patchConsole();
  setNodePath(env);
  installProcessHandlers(api);
  let handler;
  try {
    handler = await loadHandler(env.LAMBDA_TASK_ROOT || process.cwd(), env._HANDLER || '');
  } catch (error) {
    console.error('Init Error', '\t', JSON.stringify(errorBody(error)));
    await api.error(null, error).catch(() => {});
    return exitWith(129);
  }
  for (;;) {
    const answer = await api.next();
    currentRequestId = answer.headers['lambda-runtime-aws-request-id'];
    const trace = answer.headers['lambda-runtime-trace-id'];
    if (trace) env._X_AMZN_TRACE_ID = trace;
    else delete env._X_AMZN_TRACE_ID;
    await invoke(api, handler, answer, env);
    onFatal = null;
  }
}

main().catch(fatal);
