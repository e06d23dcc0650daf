'use strict';

// sfu/setup.sh builds the mediasoup worker once per machine into a cache outside
// the clone (npm's own postinstall cannot run here, see docs/sfu.md). mediasoup
// reads MEDIASOUP_WORKER_BIN when it is first required, so this runs before that.

const fs = require('fs');
const os = require('os');
const path = require('path');

const MEDIASOUP_VERSION = '3.12.16';

function cachedWorkerPath()
{
	const cacheHome = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');

	return path.join(cacheHome, 'privastream', `mediasoup-worker-${MEDIASOUP_VERSION}`, 'mediasoup-worker');
}

function useCachedWorkerBinary()
{
	if (process.env.MEDIASOUP_WORKER_BIN)
		return;

	const cached = cachedWorkerPath();

	if (!fs.existsSync(cached))
	{
		throw new Error(`no mediasoup worker at ${cached} and MEDIASOUP_WORKER_BIN is not set: run sfu/setup.sh`);
	}
	process.env.MEDIASOUP_WORKER_BIN = cached;
}

module.exports = { useCachedWorkerBinary };
