#!/usr/bin/env node
'use strict';

// PrivaStream SFU: the one composition root. It owns the process, the mediasoup
// workers, the rooms and the HTTP API:
//
//   POST   /whip/{room}                    WHIP ingest (Bearer publish token, application/sdp)
//   DELETE /whip/{room}/{session}          end the WHIP session
//   PATCH  /whip/{room}/{session}          405: no trickle ICE (RFC 9725 allows this)
//   GET    /room/{room}[?token=]           the viewer page
//   GET    /api/rooms/{room}/events        viewer session as server-sent events
//   POST   /api/rooms/{room}/viewers/{id}/{transport|connect|consume|resume}
//   POST   /whep/{room}, DELETE /whep/{room}/{id}   WHEP players
//   GET    /api/stats, /api/rooms, /api/rooms/{room}/link     admin token
//   POST   /api/rooms/{room}/rtp-out, DELETE .../rtp-out/{id}  admin token: SRTP to ip:port
//   POST   /api/pipe/{room}, GET|DELETE /api/pipe/{room}/{id} admin token: origin -> edge
//
// See docs/sfu.md for the settings and the policies.

const fs = require('fs');
const http = require('http');
const path = require('path');

const { configFromEnv } = require('./lib/config');
const { useCachedWorkerBinary } = require('./lib/workerBinary');

// Must run before mediasoup is loaded: it reads MEDIASOUP_WORKER_BIN at require time.
try
{
	useCachedWorkerBinary();
}
catch (error)
{
	process.stderr.write(`privastream-sfu: ${error.message}\n`);
	process.exit(1);
}

const { Logger } = require('./lib/Logger');
const { HttpError } = require('./lib/errors');
const {
	send, readBody, readJson, requireBearer, holdsToken, bearerOf, sameSecret, clientAddress, RateLimiter
} = require('./lib/http');
const { Admission } = require('./lib/Admission');
const { WorkerPool } = require('./lib/WorkerPool');
const { Room } = require('./lib/Room');
const { WhipSession } = require('./lib/Whip');
const { WhepSession } = require('./lib/Whep');
const { viewToken } = require('./lib/viewTokens');
const { PipeOut, OriginFeed } = require('./lib/Edge');

const logger = new Logger('server');
const PUBLIC_DIR = path.join(__dirname, 'public');
const ROOM_ID = '([A-Za-z0-9_-]{1,64})';
const ID = '([0-9a-f-]{36})';

async function main()
{
	const config = configFromEnv();

	Logger.setLevel(config.logLevel);
	const workerPool = await WorkerPool.create(config);
	const rooms = new Map();
	const roomCreations = new Map();
	const whipSessions = new Map();
	const whepSessions = new Map();
	const pipes = new Map();
	const limiter = new RateLimiter(config.rateLimitPerMinute);
	const admission = new Admission(config);

	// One Room per id; concurrent first requests share one creation. `create`:
	// 'publisher' always may, 'viewer' only while fewer than SFU_MAX_ROOMS exist
	// (so anonymous viewers cannot open routers without end, nor lock out the
	// publisher).
	async function getRoom(roomId, { create })
	{
		if (rooms.has(roomId))
			return rooms.get(roomId);
		if (!create)
			throw new HttpError(404, `no room '${roomId}'`);
		if (!roomCreations.has(roomId) && create === 'viewer' && rooms.size + roomCreations.size >= config.maxRooms)
		{
			throw new HttpError(503, `the SFU serves its maximum of ${config.maxRooms} rooms; retry later`,
				{ 'Retry-After': '30' });
		}
		if (!roomCreations.has(roomId))
		{
			roomCreations.set(roomId, (async () =>
			{
				const room = await Room.create({ roomId, workerPool, config });

				rooms.set(roomId, room);
				room.once('close', () => rooms.delete(roomId));
				// At an edge every room is fed by the origin, not by WHIP.
				if (config.originUrl)
					room.setPublisher(new OriginFeed({ room, config }));

				return room;
			})().finally(() => roomCreations.delete(roomId)));
		}

		return roomCreations.get(roomId);
	}

	// An anonymous viewer session (room page or WHEP player): admitted against the
	// caps, opened by `open()`, and its place freed when it closes.
	async function openViewerSession(req, roomId, open)
	{
		const release = admission.admitViewer(clientAddress(req, config.trustedProxies), roomId);

		try
		{
			const session = await open();

			session.once('close', release);

			return session;
		}
		catch (error)
		{
			release();
			throw error;
		}
	}

	function requireAdmin(req)
	{
		if (!config.adminToken)
			throw new HttpError(403, 'admin endpoints are off: set SFU_ADMIN_TOKEN');
		requireBearer(req, config.adminToken, 'admin');
	}

	function requireView(req, url, roomId)
	{
		if (!config.viewSecret)
			return;

		const given = url.searchParams.get('token') || bearerOf(req);

		if (!given)
			throw new HttpError(401, `room '${roomId}' needs a view token (?token=)`);
		if (!sameSecret(given, viewToken(config.viewSecret, roomId)))
			throw new HttpError(403, `wrong view token for room '${roomId}'`);
	}

	const routes =
	[
		[ 'POST', `^/whip/${ROOM_ID}$`, async (req, res, url, roomId) =>
		{
			requireBearer(req, config.publishToken, 'publish');
			if (config.originUrl)
				throw new HttpError(403, 'this SFU is an edge: publish to its origin');
			const offerText = await readBody(req, { maxBytes: config.maxBodyBytes, contentType: 'application/sdp' });
			const room = await getRoom(roomId, { create: 'publisher' });

			// From here to claimPublishing() nothing awaits: see Room.claimPublishing.
			if (room.publisher && !room.publisher.isStale())
			{
				throw new HttpError(409,
					`room '${roomId}' already has a live publisher; DELETE its session or stop sending for ${config.publisherStaleMs} ms`);
			}
			const done = room.claimPublishing();

			if (room.publisher)
			{
				logger.warn('whip() | replacing a stale publisher [room:%s, old:%s]', roomId, room.publisher.id);
				room.publisher.close();
			}

			let created;

			try
			{
				created = await WhipSession.create({ room, offerText, config });
			}
			finally
			{
				// A refused offer must not leave an empty room (and its router) behind.
				done();
			}
			const { session, answer } = created;
			const location = `/whip/${roomId}/${session.id}`;

			whipSessions.set(session.id, session);
			session.once('close', () => whipSessions.delete(session.id));
			send(res, 201, answer, { 'Content-Type': 'application/sdp', Location: location, ETag: `"${session.id}"` });
		} ],
		[ 'DELETE', `^/whip/${ROOM_ID}/${ID}$`, async (req, res, url, roomId, sessionId) =>
		{
			requireBearer(req, config.publishToken, 'publish');
			const session = whipSessions.get(sessionId);

			if (!session || session.room.id !== roomId)
				throw new HttpError(404, `no WHIP session '${sessionId}' in room '${roomId}'`);
			session.close();
			send(res, 200, 'session ended\n');
		} ],
		[ 'PATCH', `^/whip/${ROOM_ID}/${ID}$`, async (req, res) =>
		{
			send(res, 405, 'trickle ICE and ICE restarts are not supported: send all candidates in the offer\n',
				{ Allow: 'DELETE, OPTIONS' });
		} ],
		[ 'GET', `^/room/${ROOM_ID}$`, async (req, res, url, roomId) =>
		{
			requireView(req, url, roomId);
			send(res, 200, fs.readFileSync(path.join(PUBLIC_DIR, 'room.html')),
				{ 'Content-Type': 'text/html; charset=utf-8' });
		} ],
		[ 'GET', '^/(bundle\\.js|room\\.css)$', async (req, res, url, file) =>
		{
			const type = file.endsWith('.js') ? 'text/javascript' : 'text/css';

			send(res, 200, fs.readFileSync(path.join(PUBLIC_DIR, file)), { 'Content-Type': `${type}; charset=utf-8` });
		} ],
		[ 'GET', `^/api/rooms/${ROOM_ID}/events$`, async (req, res, url, roomId) =>
		{
			requireView(req, url, roomId);
			let room;
			const viewer = await openViewerSession(req, roomId, async () =>
			{
				room = await getRoom(roomId, { create: 'viewer' });

				return room.addViewer({ kind: 'page' });
			});

			streamViewerEvents(req, res, room, viewer);
		} ],
		[ 'POST', `^/api/rooms/${ROOM_ID}/viewers/${ID}/(transport|connect|consume|resume)$`,
			async (req, res, url, roomId, viewerId, action) =>
			{
				requireView(req, url, roomId);
				const body = await readJson(req, config.maxBodyBytes);
				const viewer = (await getRoom(roomId, { create: false })).getViewer(viewerId);

				send(res, 200, await viewerAction(viewer, action, body));
			} ],
		[ 'POST', `^/whep/${ROOM_ID}$`, async (req, res, url, roomId) =>
		{
			requireView(req, url, roomId);
			const offerText = await readBody(req, { maxBytes: config.maxBodyBytes, contentType: 'application/sdp' });
			const room = await getRoom(roomId, { create: false });
			let answer;
			const session = await openViewerSession(req, roomId, async () =>
			{
				const created = await WhepSession.create({ room, offerText });

				answer = created.answer;

				return created.session;
			});

			whepSessions.set(session.id, session);
			session.once('close', () => whepSessions.delete(session.id));
			send(res, 201, answer, { 'Content-Type': 'application/sdp', Location: `/whep/${roomId}/${session.id}` });
		} ],
		[ 'DELETE', `^/whep/${ROOM_ID}/${ID}$`, async (req, res, url, roomId, sessionId) =>
		{
			requireView(req, url, roomId);
			const session = whepSessions.get(sessionId);

			if (!session || session.room.id !== roomId)
				throw new HttpError(404, `no WHEP session '${sessionId}' in room '${roomId}'`);
			session.close();
			send(res, 200, 'session ended\n');
		} ],
		[ 'PATCH', `^/whep/${ROOM_ID}/${ID}$`, async (req, res) =>
		{
			send(res, 405, 'trickle ICE is not supported\n', { Allow: 'DELETE, OPTIONS' });
		} ],
		[ 'GET', '^/api/stats$', async (req, res) =>
		{
			requireAdmin(req);
			send(res, 200, { ...await serverStats(workerPool, rooms),
				limits : { ...admission.state(), rooms: config.maxRooms, portsPerRoom: config.portsPerRoom } });
		} ],
		[ 'GET', '^/api/rooms$', async (req, res) =>
		{
			requireAdmin(req);
			send(res, 200, [ ...rooms.values() ].map((room) => room.state()));
		} ],
		[ 'GET', `^/api/rooms/${ROOM_ID}/link$`, async (req, res, url, roomId) =>
		{
			requireAdmin(req);
			const query = config.viewSecret ? `?token=${viewToken(config.viewSecret, roomId)}` : '';

			send(res, 200, { room: roomId, path: `/room/${roomId}${query}` });
		} ],
		[ 'POST', `^/api/rooms/${ROOM_ID}/rtp-out$`, async (req, res, url, roomId) =>
		{
			requireAdmin(req);
			const body = await readJson(req, config.maxBodyBytes);

			if (typeof body.ip !== 'string' || !Number.isInteger(body.port))
				throw new HttpError(400, 'rtp-out needs ip and port');
			const room = await getRoom(roomId, { create: false });
			const viewer = await room.addViewer({ kind: 'rtp' });

			try
			{
				await viewer.startRtpOut(body);
			}
			catch (error)
			{
				viewer.close();
				throw new HttpError(400, `cannot start RTP out: ${error.message}`);
			}
			send(res, 201, { id: viewer.id, consumers: viewer.consumers.map((c) => ({ kind: c.kind, ssrc: c.rtpParameters.encodings[0].ssrc })) });
		} ],
		[ 'DELETE', `^/api/rooms/${ROOM_ID}/rtp-out/${ID}$`, async (req, res, url, roomId, viewerId) =>
		{
			requireAdmin(req);
			(await getRoom(roomId, { create: false })).getViewer(viewerId).close();
			send(res, 200, 'rtp out closed\n');
		} ],
		[ 'POST', `^/api/pipe/${ROOM_ID}$`, async (req, res, url, roomId) =>
		{
			requireAdmin(req);
			const body = await readJson(req, config.maxBodyBytes);
			const room = await getRoom(roomId, { create: false });
			const pipe = await PipeOut.create({ room, remote: body, config });

			pipes.set(pipe.id, pipe);
			pipe.once('close', () => pipes.delete(pipe.id));
			send(res, 201, await pipe.describe());
		} ],
		[ 'GET', `^/api/pipe/${ROOM_ID}/${ID}$`, async (req, res, url, roomId, pipeId) =>
		{
			requireAdmin(req);
			send(res, 200, await findPipe(pipes, roomId, pipeId).describe());
		} ],
		[ 'DELETE', `^/api/pipe/${ROOM_ID}/${ID}$`, async (req, res, url, roomId, pipeId) =>
		{
			requireAdmin(req);
			findPipe(pipes, roomId, pipeId).close();
			send(res, 200, 'pipe closed\n');
		} ],
		[ 'GET', '^/healthz$', async (req, res) => send(res, 200, 'ok\n') ]
	].map(([ method, pattern, handler ]) => ({ method, regex: new RegExp(pattern), handler }));

	const server = http.createServer((req, res) =>
	{
		handle(req, res).catch((error) =>
		{
			if (error instanceof HttpError)
			{
				logger.info('handle() | %s %s -> %s [reason:%s]', req.method, req.url.split('?')[0], error.status, error.message);
				if (!res.headersSent)
					send(res, error.status, `${error.message}\n`, error.headers);
			}
			else
			{
				logger.error('handle() | %s %s failed [error:%s]', req.method, req.url.split('?')[0], error.stack);
				if (!res.headersSent)
					send(res, 500, 'internal error\n');
			}
		});
	});

	async function handle(req, res)
	{
		const url = new URL(req.url, 'http://localhost');

		if (req.method === 'OPTIONS')
		{
			send(res, 204, '', { 'Accept-Post': 'application/sdp' });

			return;
		}

		// The publisher and the operator are not held to the anonymous rate limit: a
		// viewer flooding from the publisher's address (or NAT) cannot lock them out.
		if (!holdsToken(req, [ config.publishToken, config.adminToken ]))
			limiter.check(clientAddress(req, config.trustedProxies));
		let pathMatched = false;

		for (const route of routes)
		{
			const match = route.regex.exec(url.pathname);

			if (!match)
				continue;
			pathMatched = true;
			if (route.method === req.method)
				return route.handler(req, res, url, ...match.slice(1));
		}

		if (pathMatched)
			throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}`);
		throw new HttpError(404, `no such endpoint: ${url.pathname}`);
	}

	server.listen(config.httpPort, config.listenIp, () =>
	{
		const { port } = server.address();

		if (config.generatedPublishToken)
			logger.info('main() | SFU_PUBLISH_TOKEN was not set, generated one [token:%s]', config.publishToken);
		// Tests and the demo wait for this exact line.
		logger.info('main() | listening [http:http://%s:%s, announcedIp:%s, workers:%s, mode:%s]',
			config.listenIp, port, config.announcedIp || config.listenIp, workerPool.workers.length,
			config.originUrl ? `edge of ${config.originUrl}` : 'origin');
		logger.info('main() | limits [rooms:%s, viewers:%s, viewersPerRoom:%s, viewersPerAddress:%s, trustedProxies:%s]',
			config.maxRooms, config.maxViewers, config.maxViewersPerRoom, config.maxViewersPerIp,
			[ ...config.trustedProxies ].join(',') || 'none');
	});

	const shutdown = (signal) =>
	{
		logger.info('shutdown() | %s received, closing', signal);
		for (const room of rooms.values())
			room.close();
		workerPool.close();
		server.close();
		setTimeout(() => process.exit(0), 200);
	};

	process.on('SIGINT', () => shutdown('SIGINT'));
	process.on('SIGTERM', () => shutdown('SIGTERM'));
}

// The viewer's session lives as long as this event stream: when the page goes
// away the connection closes and so do its transport and consumers.
function streamViewerEvents(req, res, room, viewer)
{
	res.writeHead(200, {
		'Content-Type'      : 'text/event-stream',
		'Cache-Control'     : 'no-store',
		'X-Accel-Buffering' : 'no'
	});

	const push = (event) => res.write(`data: ${JSON.stringify(event)}\n\n`);
	const onState = (state) => push(state);
	const onConsumerClosed = (consumerId) => push({ type: 'consumerclosed', consumerId });
	// Comments keep proxies and the browser from timing the stream out.
	const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15000);

	push({ ...room.state(), type: 'hello', viewerId: viewer.id, routerRtpCapabilities: room.rtpCapabilities });
	room.on('state', onState);
	viewer.on('consumerclosed', onConsumerClosed);

	const end = () =>
	{
		clearInterval(keepAlive);
		room.off('state', onState);
		viewer.close();
		res.end();
	};

	req.on('close', end);
	viewer.once('close', end);
}

async function viewerAction(viewer, action, body)
{
	switch (action)
	{
		case 'transport':
		{
			const transport = await viewer.createTransport();

			return {
				id             : transport.id,
				iceParameters  : transport.iceParameters,
				iceCandidates  : transport.iceCandidates,
				dtlsParameters : transport.dtlsParameters
			};
		}
		case 'connect':
		{
			if (!body.dtlsParameters)
				throw new HttpError(400, 'connect needs dtlsParameters');
			await viewer.connect(body.dtlsParameters);

			return { ok: true };
		}
		case 'consume':
		{
			if (!body.rtpCapabilities)
				throw new HttpError(400, 'consume needs rtpCapabilities');
			const consumers = await viewer.consume(body.rtpCapabilities);

			return consumers.map((c) => ({ id: c.id, producerId: c.producerId, kind: c.kind, rtpParameters: c.rtpParameters }));
		}
		case 'resume':
		{
			if (!Array.isArray(body.consumerIds))
				throw new HttpError(400, 'resume needs consumerIds');
			await viewer.resume(body.consumerIds);

			return { ok: true };
		}
	}
	throw new HttpError(404, `no viewer action '${action}'`);
}

function findPipe(pipes, roomId, pipeId)
{
	const pipe = pipes.get(pipeId);

	if (!pipe || pipe.room.id !== roomId)
		throw new HttpError(404, `no pipe '${pipeId}' for room '${roomId}'`);

	return pipe;
}

// Totals straight from the workers' own dumps, so that a leak in our maps cannot
// hide a transport or consumer mediasoup still holds.
async function serverStats(workerPool, rooms)
{
	const workers = [];
	const totals = { routers: 0, transports: 0, producers: 0, consumers: 0 };

	for (const worker of workerPool.workers)
	{
		const dump = await worker.dump();
		const usage = await worker.getResourceUsage();

		totals.routers += dump.routerIds.length;
		workers.push({ pid: worker.pid, routers: dump.routerIds.length, cpuUserMs: usage.ru_utime, cpuSystemMs: usage.ru_stime });
	}

	const roomStats = [];

	for (const room of rooms.values())
	{
		const stats = await room.stats();

		for (const router of stats.routers)
		{
			totals.transports += router.transports;
			totals.producers += router.producers;
			totals.consumers += router.consumers;
		}
		roomStats.push(stats);
	}

	return { workers, totals, rooms: roomStats };
}

main().catch((error) =>
{
	// Configuration errors are for the user; anything else also gets its stack.
	logger.error('main() | could not start [error:%s]', error.message);
	logger.debug('main() | %s', error.stack);
	process.exit(1);
});
