'use strict';

// Every setting of the SFU, read once from the environment (see docs/sfu.md).
// A bad value stops the process with a message naming the variable, never a
// half-configured server.

const crypto = require('crypto');
const os = require('os');

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
		// Per client IP: requests per minute on the WHIP/WHEP/API endpoints.
		rateLimitPerMinute : intFromEnv(env, 'SFU_RATE_LIMIT_PER_MINUTE', 600, 1, 1000000),
		// Edge mode: serve rooms piped from this origin SFU (see lib/Edge.js).
		originUrl          : env.SFU_ORIGIN_URL || '',
		originToken        : env.SFU_ORIGIN_TOKEN || '',
		logLevel           : env.SFU_LOG_LEVEL || 'info'
	};

	if (config.rtcMinPort > config.rtcMaxPort)
		throw new Error(`SFU_RTC_MIN_PORT (${config.rtcMinPort}) is above SFU_RTC_MAX_PORT (${config.rtcMaxPort})`);

	if (config.originUrl && !config.originToken)
		throw new Error('SFU_ORIGIN_URL is set but SFU_ORIGIN_TOKEN (the origin\'s admin token) is not');

	if (config.listenIp === '0.0.0.0' && !config.announcedIp)
		config.announcedIp = firstExternalIPv4();

	return config;
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

module.exports = { configFromEnv };
