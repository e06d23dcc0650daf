'use strict';

// Small HTTP helpers shared by the routes in server.js: bodies with a size limit,
// CORS, bearer tokens compared in constant time, the client's address behind a
// reverse proxy, and a per-address rate limit.

const crypto = require('crypto');

const { HttpError } = require('./errors');

const CORS_HEADERS =
{
	'Access-Control-Allow-Origin'   : '*',
	'Access-Control-Allow-Methods'  : 'GET, POST, PATCH, DELETE, OPTIONS',
	'Access-Control-Allow-Headers'  : 'Authorization, Content-Type, If-Match',
	'Access-Control-Expose-Headers' : 'Location, Link, ETag, Accept-Patch, Accept-Post'
};

function send(res, status, body = '', headers = {})
{
	const text = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
	const type = typeof body === 'string' || Buffer.isBuffer(body) ? 'text/plain; charset=utf-8' : 'application/json';

	res.writeHead(status, {
		'Content-Type'   : type,
		'Content-Length' : Buffer.byteLength(text),
		'Cache-Control'  : 'no-store',
		...CORS_HEADERS,
		...headers
	});
	res.end(text);
}

function mediaType(req)
{
	return String(req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
}

// Reads the whole body, refusing the wrong content type (415) and more than
// maxBytes (413) before buffering it.
function readBody(req, { maxBytes, contentType })
{
	if (contentType && mediaType(req) !== contentType)
	{
		return Promise.reject(new HttpError(415,
			`Content-Type must be ${contentType} (got '${req.headers['content-type'] || ''}')`));
	}

	const declared = Number(req.headers['content-length']);

	if (declared > maxBytes)
		return Promise.reject(new HttpError(413, `body of ${declared} bytes is over the ${maxBytes}-byte limit`));

	return new Promise((resolve, reject) =>
	{
		const chunks = [];
		let size = 0;

		req.on('data', (chunk) =>
		{
			size += chunk.length;
			if (size > maxBytes)
			{
				reject(new HttpError(413, `body is over the ${maxBytes}-byte limit`));
				req.destroy();

				return;
			}
			chunks.push(chunk);
		});
		req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
		req.on('error', reject);
	});
}

async function readJson(req, maxBytes)
{
	const text = await readBody(req, { maxBytes, contentType: 'application/json' });

	try
	{
		return JSON.parse(text);
	}
	catch (error)
	{
		throw new HttpError(400, `body is not JSON: ${error.message}`);
	}
}

function sameSecret(given, expected)
{
	const a = Buffer.from(String(given));
	const b = Buffer.from(String(expected));

	return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function bearerOf(req)
{
	const match = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization || ''));

	return match ? match[1] : '';
}

// Whether the request carries one of these (non-empty) tokens.
function holdsToken(req, tokens)
{
	const given = bearerOf(req);

	return given !== '' && tokens.some((token) => token && sameSecret(given, token));
}

// 401 when no bearer token was sent, 403 when it is the wrong one.
function requireBearer(req, expected, what)
{
	const given = bearerOf(req);

	if (!given)
	{
		throw new HttpError(401, `${what} needs 'Authorization: Bearer <token>'`,
			{ 'WWW-Authenticate': 'Bearer' });
	}

	if (!sameSecret(given, expected))
		throw new HttpError(403, `wrong ${what} token`);
}

// IPv4 peers of a dual-stack socket appear as ::ffff:a.b.c.d.
function plainAddress(address)
{
	return String(address || '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
}

// The client's address: the socket's peer or, when the peer is one of our reverse
// proxies, the rightmost X-Forwarded-For entry that none of them added. Entries
// further left were written by the client itself and can say anything.
function clientAddress(req, trustedProxies)
{
	const peer = plainAddress(req.socket.remoteAddress);

	if (!trustedProxies.has(peer))
		return peer;

	const hops = String(req.headers['x-forwarded-for'] || '').split(',')
		.map((hop) => plainAddress(hop.trim()))
		.filter(Boolean);

	for (let i = hops.length - 1; i >= 0; --i)
	{
		if (!trustedProxies.has(hops[i]))
			return hops[i];
	}

	return peer;
}

// Fixed one-minute windows per client address; enough to stop a script hammering
// WHIP or the viewer API, without any state beyond one counter per address.
class RateLimiter
{
	constructor(perMinute)
	{
		this._perMinute = perMinute;
		this._window = 0;
		this._counts = new Map();
	}

	check(address)
	{
		const window = Math.floor(Date.now() / 60000);

		if (window !== this._window)
		{
			this._window = window;
			this._counts.clear();
		}

		const count = (this._counts.get(address) || 0) + 1;

		this._counts.set(address, count);

		if (count > this._perMinute)
		{
			const retryAfter = 60 - Math.floor((Date.now() / 1000) % 60);

			throw new HttpError(429, `rate limit of ${this._perMinute} requests per minute reached`,
				{ 'Retry-After': String(retryAfter) });
		}
	}
}

module.exports =
{
	CORS_HEADERS, send, readBody, readJson, requireBearer, bearerOf, holdsToken, sameSecret, clientAddress, RateLimiter
};
