'use strict';

// One mediasoup worker per core. A worker is a single-threaded C++ process, so
// rooms and the routers of one busy room are spread over them by load.

const mediasoup = require('mediasoup');

const { Logger } = require('./Logger');

const logger = new Logger('workers');

class WorkerPool
{
	static async create({ numWorkers, rtcMinPort, rtcMaxPort })
	{
		const workers = [];

		for (let i = 0; i < numWorkers; ++i)
		{
			const worker = await mediasoup.createWorker({
				logLevel : 'warn',
				rtcMinPort,
				rtcMaxPort
			});

			// A dead worker takes its rooms with it and nothing can recover them
			// here; end the process so that a supervisor restarts a clean one.
			worker.on('died', (error) =>
			{
				logger.error('died() | mediasoup worker died, exiting in 2 s [pid:%s, error:%s]', worker.pid, error);
				setTimeout(() => process.exit(1), 2000);
			});
			worker.appData.load = 0;
			workers.push(worker);
		}

		logger.info('create() | workers started [count:%s, pids:%s]', workers.length, workers.map((w) => w.pid).join(','));

		return new WorkerPool(workers);
	}

	constructor(workers)
	{
		this._workers = workers;
	}

	get workers()
	{
		return this._workers;
	}

	// `load` counts routers and consumers placed on a worker by the rooms; it is a
	// cheap stand-in for CPU that needs no sampling.
	leastLoaded(exclude = new Set())
	{
		const candidates = this._workers.filter((w) => !exclude.has(w));
		const pool = candidates.length > 0 ? candidates : this._workers;

		return pool.reduce((best, w) => (w.appData.load < best.appData.load ? w : best));
	}

	close()
	{
		for (const worker of this._workers)
			worker.close();
	}
}

module.exports = { WorkerPool };
