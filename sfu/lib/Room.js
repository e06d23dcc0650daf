'use strict';

// A Room owns the routers that carry one stream: the source router, where the
// publisher's Producers live (WHIP session, or the pipe from an origin SFU), and
// more routers on other workers once the source router carries
// `routerMaxConsumers` consumers. Every Producer is piped to every router of the
// room, so a viewer consumes from whichever router it was placed on.
// WHEP players get routers of their own (see lib/Whep.js), on any worker.
// Viewers come and go; the room closes itself when it has neither publisher nor
// viewers, and no publisher is connecting.

const crypto = require('crypto');
const { EventEmitter } = require('events');

const { WHEP_ROUTERS_PER_ROOM } = require('./config');
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
		this._publishing = false;
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
	// codecs carry the payload types one kind of player offered. It may share a
	// worker with the room's other routers, because its producers get ids of
	// their own (pipeWithOwnIds below).
	//
	// Otherwise one router per worker and room: pipeToRouter keeps the producer's
	// id, and ids are unique within a worker. Returns null when every worker has one.
	async _addRouter({ mediaCodecs = ROUTER_MEDIA_CODECS, payloadTypes = null } = {})
	{
		let worker;

		if (payloadTypes)
		{
			worker = this._workerPool.leastLoaded();
		}
		else
		{
			const used = new Set(this._routers.filter((entry) => !entry.payloadTypes).map((entry) => entry.worker));

			if (used.size >= this._workerPool.workers.length)
				return null;
			worker = this._workerPool.leastLoaded(used);
		}
		const router = await worker.createRouter({ mediaCodecs });
		// producerIds: the id on this router of each producer of the source router.
		const entry = { router, worker, payloadTypes, producerIds: new Map(), pipe: null };

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
		if (entry.payloadTypes)
		{
			await pipeWithOwnIds(this.sourceRouter, producer, entry);

			return;
		}
		await this.sourceRouter.pipeToRouter({ producerId: producer.id, router: entry.router });
	}

	// The id under which `router` carries the source router's producer `producerId`,
	// or undefined when it does not carry it (yet).
	producerIdOn(router, producerId)
	{
		const entry = this._routers.find((e) => e.router === router);

		if (!entry || !entry.payloadTypes)
			return entry ? producerId : undefined;

		return entry.producerIds.get(producerId);
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

	// One WHIP POST at a time. The check and the claim run with no await between
	// them, so of two simultaneous POSTs exactly one passes. Returns done(), to
	// call once the POST has set a publisher or failed.
	claimPublishing()
	{
		if (this._publishing)
			throw new HttpError(409, `room '${this.id}' already has a publisher connecting; retry in a few seconds`);
		this._publishing = true;

		return () =>
		{
			this._publishing = false;
			this.closeIfIdle();
		};
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

		if (this._routers.filter((entry) => entry.payloadTypes).length >= WHEP_ROUTERS_PER_ROOM)
		{
			throw new HttpError(503,
				`room '${this.id}' serves ${WHEP_ROUTERS_PER_ROOM} kinds of WHEP player already; use the room page`);
		}

		return this._addRouter({ mediaCodecs, payloadTypes: key });
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
		if (this._viewers.size === 0 && !this._publishing && (!this.publisher || this.publisher.endsWithLastViewer))
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
			producers : this.producers.map((p) => ({
				id        : p.id,
				kind      : p.kind,
				codec     : p.rtpParameters.codecs[0].mimeType,
				// rid, or SSRC, of each encoding: simulcast layers from the smallest up.
				encodings : p.rtpParameters.encodings.map((e) => e.rid || e.ssrc)
			})),
			viewers   : this._viewers.size,
			routers
		};
	}
}

// Like router.pipeToRouter(), but the pipe producer gets an id of its own, so that
// the target router may live on the source router's worker (mediasoup 3.12's
// pipeToRouter keeps the id, and ids are unique within a worker). One pair of
// PipeTransports per target router carries all the room's producers.
async function pipeWithOwnIds(sourceRouter, producer, entry)
{
	if (!entry.pipe)
		entry.pipe = connectedPipePair(sourceRouter, entry.router);
	const { local, remote } = await entry.pipe;
	const pipeConsumer = await local.consume({ producerId: producer.id });
	let pipeProducer;

	try
	{
		pipeProducer = await remote.produce({
			kind          : pipeConsumer.kind,
			rtpParameters : pipeConsumer.rtpParameters,
			paused        : pipeConsumer.producerPaused
		});
	}
	catch (error)
	{
		pipeConsumer.close();
		throw error;
	}

	pipeConsumer.observer.once('close', () => pipeProducer.close());
	pipeConsumer.observer.on('pause', () => pipeProducer.pause());
	pipeConsumer.observer.on('resume', () => pipeProducer.resume());
	pipeProducer.observer.once('close', () =>
	{
		pipeConsumer.close();
		entry.producerIds.delete(producer.id);
	});
	entry.producerIds.set(producer.id, pipeProducer.id);
}

async function connectedPipePair(sourceRouter, targetRouter)
{
	const options = { listenIp: '127.0.0.1' };
	const [ local, remote ] = await Promise.all(
		[ sourceRouter.createPipeTransport(options), targetRouter.createPipeTransport(options) ]);

	await Promise.all([
		local.connect({ ip: remote.tuple.localIp, port: remote.tuple.localPort }),
		remote.connect({ ip: local.tuple.localIp, port: local.tuple.localPort })
	]);

	return { local, remote };
}

// Router dumps list consumers per producer, as an object in 3.12 and as
// [{ key, values }] in later releases.
function consumerCount(map)
{
	const lists = Array.isArray(map) ? map.map((item) => item.values) : Object.values(map);

	return lists.reduce((n, list) => n + list.length, 0);
}

module.exports = { Room };
