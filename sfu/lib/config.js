'use strict';

// Every setting of the SFU, read once from the environment (see docs/sfu.md).
// A bad value stops the process with a message naming the variable, never a
// half-configured server.

const crypto = require('crypto');
const net = require('net');
const os = require('os');

// WHEP players get routers of their own, one per set of payload types offered (see
// lib/Whep.js); a room keeps at most this many, so that offers with made-up
// payload types cannot create routers without end.
const WHEP_ROUTERS_PER_ROOM = 4;

function intFromEnv(env, name, fallback, min, max)
{
	const raw = env[name];

	if (raw === undefined || raw === '')
		return fallback;

	const value = Number(raw);

	if (!Number.isInteger(value) || value < min || value > max)
		throw new Error(`${name} must be an integer in ${min}..${max} (got '${raw}')`);

	return value;
}

function configFromEnv(env = process.env)
{
	const generatedPublishToken = !env.SFU_PUBLISH_TOKEN;
	const config =
	{
		httpPort     : intFromEnv(env, 'SFU_HTTP_PORT', 8080, 0, 65535),
		// HTTP and RTC both bind here; announcedIp is what ICE candidates carry
		// (a public address when the SFU sits behind NAT).
		listenIp     : env.SFU_LISTEN_IP || '0.0.0.0',
		announcedIp  : env.SFU_ANNOUNCED_IP || undefined,
		rtcMinPort   : intFromEnv(env, 'SFU_RTC_MIN_PORT', 40000, 1024, 65535),
		rtcMaxPort   : intFromEnv(env, 'SFU_RTC_MAX_PORT', 49999, 1024, 65535),
		numWorkers   : intFromEnv(env, 'SFU_WORKERS', os.cpus().length, 1, 256),
		publishToken : env.SFU_PUBLISH_TOKEN || crypto.randomBytes(18).toString('base64url'),
		generatedPublishToken,
		// Optional: when set, room links need ?token=<view token of that room>.
		viewSecret   : env.SFU_VIEW_TOKEN || '',
		// Optional: when unset the admin endpoints (stats, room list, pipe) are off.
		adminToken   : env.SFU_ADMIN_TOKEN || '',
		// A room's router takes viewers until it carries this many consumers; the
		// next viewer goes to a router on another worker, fed by pipeToRouter.
		routerMaxConsumers : intFromEnv(env, 'SFU_ROUTER_MAX_CONSUMERS', 600, 2, 100000),
		// 409 policy: a publisher that sent no RTP for this long is stale and a
		// new WHIP POST replaces it (OBS crashed or lost its network without DELETE).
		publisherStaleMs   : intFromEnv(env, 'SFU_PUBLISHER_STALE_MS', 3000, 500, 600000),
		maxBodyBytes       : intFromEnv(env, 'SFU_MAX_BODY_BYTES', 64 * 1024, 1024, 1024 * 1024),
		// Per client address: requests per minute on the WHIP/WHEP/API endpoints.
		// Requests that carry the publish or admin token are not counted.
		rateLimitPerMinute : intFromEnv(env, 'SFU_RATE_LIMIT_PER_MINUTE', 600, 1, 1000000),
		// Reverse proxies whose X-Forwarded-For is believed; from anyone else the
		// header is ignored, or a client could pick its own address.
		trustedProxies     : addressListFromEnv(env, 'SFU_TRUSTED_PROXIES'),
		// Caps on what anonymous viewers can open (the publisher is never refused
		// by them): rooms at once, viewer sessions per room and per client address.
		// The default room cap and the cap on all viewers follow from the RTC port
		// range (viewerCapacity below).
		maxViewersPerRoom  : intFromEnv(env, 'SFU_MAX_VIEWERS_PER_ROOM', 100000, 1, 100000),
		maxViewersPerIp    : intFromEnv(env, 'SFU_MAX_VIEWERS_PER_IP', 50, 1, 100000),
		// Edge mode: serve rooms piped from this origin SFU (see lib/Edge.js).
		originUrl          : env.SFU_ORIGIN_URL || '',
		originToken        : env.SFU_ORIGIN_TOKEN || '',
		logLevel           : env.SFU_LOG_LEVEL || 'info'
	};

	if (config.rtcMinPort > config.rtcMaxPort)
		throw new Error(`SFU_RTC_MIN_PORT (${config.rtcMinPort}) is above SFU_RTC_MAX_PORT (${config.rtcMaxPort})`);

	Object.assign(config, viewerCapacity(config, env));

	if (config.originUrl && !config.originToken)
		throw new Error('SFU_ORIGIN_URL is set but SFU_ORIGIN_TOKEN (the origin\'s admin token) is not');

	if (config.listenIp === '0.0.0.0' && !config.announcedIp)
		config.announcedIp = firstExternalIPv4();

	return config;
}

function addressListFromEnv(env, name)
{
	const items = String(env[name] || '').split(',').map((item) => item.trim()).filter(Boolean);
	const bad = items.filter((item) => net.isIP(item) === 0);

	if (bad.length > 0)
		throw new Error(`${name} must list IP addresses separated by commas (not '${bad.join("', '")}')`);

	return new Set(items);
}

// Every transport takes one UDP port from SFU_RTC_MIN_PORT..SFU_RTC_MAX_PORT: a
// viewer's WebRtcTransport, the publisher's, and each PipeTransport that feeds one
// of a room's extra routers (two per router: one on each side). Ports are
// reserved for the publisher and the pipes of every room the caps allow, and
// viewers get the rest, so that viewers filling the range can never refuse the
// publisher a port; SFU_MAX_VIEWERS can only lower that figure.
// By default rooms get at most half of the range, and no more than 100 rooms.
function viewerCapacity(config, env)
{
	const ports = config.rtcMaxPort - config.rtcMinPort + 1;
	const extraRoutersPerRoom = WHEP_ROUTERS_PER_ROOM + config.numWorkers - 1;
	const portsPerRoom = 1 + 2 * extraRoutersPerRoom;
	const defaultRooms = Math.max(1, Math.min(100, Math.floor(ports / (2 * portsPerRoom))));
	const maxRooms = intFromEnv(env, 'SFU_MAX_ROOMS', defaultRooms, 1, 100000);
	const capacity = ports - maxRooms * portsPerRoom;

	if (capacity < 1)
	{
		throw new Error(`the RTC port range (${ports} ports) leaves no room for viewers: ${maxRooms} rooms ` +
			`(SFU_MAX_ROOMS) reserve ${portsPerRoom} ports each; widen SFU_RTC_MIN_PORT..SFU_RTC_MAX_PORT or lower SFU_MAX_ROOMS`);
	}

	const maxViewers = intFromEnv(env, 'SFU_MAX_VIEWERS', capacity, 1, 1000000);

	if (maxViewers > capacity)
	{
		throw new Error(`SFU_MAX_VIEWERS (${maxViewers}) is above the ${capacity} viewers the RTC port range ` +
			`(${ports} ports, ${portsPerRoom} reserved for each of ${maxRooms} rooms) can carry`);
	}

	return { maxRooms, maxViewers, portsPerRoom };
}

// ICE candidates cannot carry 0.0.0.0: announce the first non-internal IPv4.
function firstExternalIPv4()
{
	for (const addresses of Object.values(os.networkInterfaces()))
	{
		for (const address of addresses)
		{
			if (address.family === 'IPv4' && !address.internal)
				return address.address;
		}
	}

	throw new Error('SFU_LISTEN_IP is 0.0.0.0 and this host has no non-loopback IPv4: set SFU_ANNOUNCED_IP');
}

module.exports = { configFromEnv, WHEP_ROUTERS_PER_ROOM };
