'use strict';

// A Room owns the routers that carry one stream: the source router, where the
// publisher's Producers live (WHIP session, or the pipe from an origin SFU), and
// more routers on other workers once the source router carries
// `routerMaxConsumers` consumers. Every Producer is piped (pipeToRouter) to every
// router of the room, so a viewer consumes from whichever router it was placed on.
// Viewers come and go; the room closes itself when it has neither publisher nor
// viewers.

const crypto = require('crypto');
const { EventEmitter } = require('events');

const { HttpError } = require('./errors');
const { Logger } = require('./Logger');
const { ROUTER_MEDIA_CODECS } = require('./sdp');
const { Viewer } = require('./Viewer');

const logger = new Logger('room');

class Room extends EventEmitter
{
	static async create({ roomId, workerPool, config })
	{
		const room = new Room({ roomId, workerPool, config });

		await room._addRouter();
		logger.info('create() | room created [room:%s]', roomId);

		return room;
	}

	constructor({ roomId, workerPool, config })
	{
		super();
		this.setMaxListeners(0);
		this.id = roomId;
		this._workerPool = workerPool;
		this._config = config;
		this._closed = false;
		// [{ router, worker }], the first is the source router.
		this._routers = [];
		this._producers = new Map();
		this._viewers = new Map();
		this._placement = Promise.resolve();
		// Whoever feeds the producers: a WhipSession, or an origin feed at an edge.
		this.publisher = null;
	}

	get closed() { return this._closed; }
	get sourceRouter() { return this._routers[0].router; }
	get rtpCapabilities() { return this.sourceRouter.rtpCapabilities; }
	get producers() { return [ ...this._producers.values() ]; }
	get live() { return this._producers.size > 0; }
	get viewerCount() { return this._viewers.size; }

	// `payloadTypes` set: a router for WHEP players only (see lib/Whep.js), whose
	// codecs carry the payload types one kind of player offered.
	//
	// One router per worker and room: a piped producer keeps its producer's id, and
	// ids are unique within a worker. Returns null when every worker has one.
	async _addRouter({ mediaCodecs = ROUTER_MEDIA_CODECS, payloadTypes = null } = {})
	{
		const used = new Set(this._routers.map((entry) => entry.worker));

		if (used.size >= this._workerPool.workers.length)
			return null;
		const worker = this._workerPool.leastLoaded(used);
		const router = await worker.createRouter({ mediaCodecs });
		const entry = { router, worker, payloadTypes };

		worker.appData.load += 1;
		router.observer.once('close', () => { worker.appData.load -= 1; });
		this._routers.push(entry);

		// A router added while live must carry the current stream too.
		for (const producer of this._producers.values())
			await this._pipe(producer, entry);

		if (this._routers.length > 1)
			logger.info('_addRouter() | room spread to another router [room:%s, routers:%s, worker:%s]', this.id, this._routers.length, worker.pid);

		return entry;
	}

	async _pipe(producer, entry)
	{
		if (entry.router === this.sourceRouter)
			return;
		await this.sourceRouter.pipeToRouter({ producerId: producer.id, router: entry.router });
	}

	// The publisher registers each Producer it created on the source router.
	async addProducer(producer)
	{
		this._producers.set(producer.id, producer);
		producer.observer.once('close', () =>
		{
			this._producers.delete(producer.id);
			this._emitState();
		});

		for (const entry of this._routers.slice(1))
			await this._pipe(producer, entry);

		this._emitState();
	}

	setPublisher(publisher)
	{
		this.publisher = publisher;
		this._emitState();
	}

	clearPublisher(publisher)
	{
		if (this.publisher !== publisher)
			return;
		this.publisher = null;
		this._emitState();
		this.closeIfIdle();
	}

	_viewersOn(router)
	{
		return [ ...this._viewers.values() ].filter((v) => v.router === router).length;
	}

	// Fill routers in order. A viewer takes one consumer per kind (audio + video),
	// counted when it joins so that a burst of joins cannot overfill a router.
	async _routerForViewer()
	{
		const consumersPerViewer = 2;
		const roomy = this._routers.find((entry) => !entry.payloadTypes &&
			(this._viewersOn(entry.router) + 1) * consumersPerViewer <= this._config.routerMaxConsumers);

		if (roomy)
			return roomy;

		// Past the threshold everywhere and no worker left: the emptiest router.
		return await this._addRouter() || this._routers
			.filter((entry) => !entry.payloadTypes)
			.reduce((best, entry) => (this._viewersOn(entry.router) < this._viewersOn(best.router) ? entry : best));
	}

	// The router for WHEP players whose offer used these payload types, shared by
	// all players that offered the same ones (every Chrome of one version does).
	_routerForPayloadTypes(mediaCodecs)
	{
		const key = JSON.stringify(mediaCodecs);

		const existing = this._routers.find((entry) => entry.payloadTypes === key);

		if (existing)
			return existing;

		return this._addRouter({ mediaCodecs, payloadTypes: key }).then((entry) =>
		{
			if (!entry)
				throw new HttpError(503, `room '${this.id}' has no worker left for another kind of WHEP player; use the room page`);

			return entry;
		});
	}

	async addViewer({ kind, mediaCodecs = null })
	{
		if (this._closed)
			throw new HttpError(503, `room '${this.id}' is closing, retry`);

		// Placement is serialised so that a burst of joins cannot all see the same
		// free router, or all create a new one.
		this._placement = this._placement.catch(() => null).then(() =>
			(mediaCodecs ? this._routerForPayloadTypes(mediaCodecs) : this._routerForViewer()));
		const entry = await this._placement;
		const viewer = new Viewer({
			id     : crypto.randomUUID(),
			room   : this,
			router : entry.router,
			worker : entry.worker,
			kind,
			config : this._config
		});

		this._viewers.set(viewer.id, viewer);
		viewer.once('close', () =>
		{
			this._viewers.delete(viewer.id);
			this._emitState();
			this.closeIfIdle();
		});
		logger.info('addViewer() | viewer joined [room:%s, viewer:%s, kind:%s, viewers:%s]', this.id, viewer.id, kind, this._viewers.size);
		this._emitState();

		return viewer;
	}

	getViewer(viewerId)
	{
		const viewer = this._viewers.get(viewerId);

		if (!viewer)
			throw new HttpError(404, `no viewer '${viewerId}' in room '${this.id}'`);

		return viewer;
	}

	state()
	{
		return { type: 'state', room: this.id, live: this.live, viewers: this._viewers.size };
	}

	_emitState()
	{
		if (!this._closed)
			this.emit('state', this.state());
	}

	closeIfIdle()
	{
		if (this._viewers.size === 0 && (!this.publisher || this.publisher.endsWithLastViewer))
			this.close();
	}

	close()
	{
		if (this._closed)
			return;
		this._closed = true;
		logger.info('close() | room closed [room:%s]', this.id);

		for (const viewer of [ ...this._viewers.values() ])
			viewer.close();

		if (this.publisher)
			this.publisher.close();

		// Closing a router closes its transports, producers and consumers.
		for (const entry of this._routers)
			entry.router.close();

		this.emit('close');
	}

	// For GET /api/stats: what our maps hold, next to what mediasoup itself holds.
	async stats()
	{
		const routers = [];

		for (const entry of this._routers)
		{
			const dump = await entry.router.dump();

			routers.push({
				id         : entry.router.id,
				workerPid  : entry.worker.pid,
				viewers    : this._viewersOn(entry.router),
				consumers  : consumerCount(dump.mapProducerIdConsumerIds),
				producers  : Array.isArray(dump.mapProducerIdConsumerIds) ? dump.mapProducerIdConsumerIds.length : Object.keys(dump.mapProducerIdConsumerIds).length,
				transports : dump.transportIds.length
			});
		}

		return {
			id        : this.id,
			live      : this.live,
			publisher : this.publisher ? this.publisher.describe() : null,
			producers : this.producers.map((p) => ({ id: p.id, kind: p.kind, codec: p.rtpParameters.codecs[0].mimeType })),
			viewers   : this._viewers.size,
			routers
		};
	}
}

// Router dumps list consumers per producer, as an object in 3.12 and as
// [{ key, values }] in later releases.
function consumerCount(map)
{
	const lists = Array.isArray(map) ? map.map((item) => item.values) : Object.values(map);

	return lists.reduce((n, list) => n + list.length, 0);
}

module.exports = { Room };
