'use strict';

// A Viewer is one receiving transport on one of its room's routers, plus one
// Consumer per Producer of the room. The room page drives a WebRtcTransport over
// the HTTP API (mediasoup-client); an "rtp" viewer is an SRTP PlainTransport sending
// to a given address (admin API: recorders, restreamers, the benchmark's sink).
// Closing it closes the transport, which closes its consumers.

const { EventEmitter } = require('events');

const { HttpError } = require('./errors');
const { Logger } = require('./Logger');

const logger = new Logger('viewer');

class Viewer extends EventEmitter
{
	constructor({ id, room, router, worker, kind, config })
	{
		super();
		this.id = id;
		this.room = room;
		this.router = router;
		this.kind = kind;
		this._worker = worker;
		this._config = config;
		this._closed = false;
		this.transport = null;
		this._consumers = new Map();
		router.observer.once('close', () => this.close());
	}

	get consumerCount() { return this._consumers.size; }
	get consumers() { return [ ...this._consumers.values() ]; }

	async createTransport()
	{
		if (this.transport)
			throw new HttpError(409, `viewer '${this.id}' already has a transport`);

		this.transport = await this.router.createWebRtcTransport(webRtcTransportOptions(this._config));
		this.transport.on('dtlsstatechange', (state) =>
		{
			if (state === 'failed' || state === 'closed')
				this.close();
		});

		return this.transport;
	}

	// An "rtp" viewer: SRTP (as a browser would get it) to ip:port, all producers
	// consumed at once and unpaused, since there is no client to set up first.
	async startRtpOut({ ip, port })
	{
		this.transport = await this.router.createPlainTransport({
			listenIp   : { ip: this._config.listenIp, announcedIp: this._config.announcedIp },
			rtcpMux    : true,
			comedia    : false,
			enableSrtp : true
		});
		await this.transport.connect({ ip, port, srtpParameters: this.transport.srtpParameters });
		await this.consume(this.router.rtpCapabilities);
		await this.resume(this.consumers.map((c) => c.id));
	}

	_requireTransport()
	{
		if (!this.transport || this._closed)
			throw new HttpError(409, `viewer '${this.id}' has no open transport`);

		return this.transport;
	}

	async connect(dtlsParameters)
	{
		await this._requireTransport().connect({ dtlsParameters });
	}

	// Consumes every Producer of the room that this viewer does not consume yet.
	// Consumers start paused and are resumed once the client has set them up, or
	// the browser may drop the first packets (and the keyframe) it cannot yet map.
	async consume(rtpCapabilities)
	{
		const transport = this._requireTransport();
		// Consumers remember the source router's producer id: on a WHEP router the
		// producer they consume has an id of its own (see Room.producerIdOn).
		const consumed = new Set(this.consumers.map((c) => c.appData.sourceProducerId));
		const created = [];

		for (const producer of this.room.producers)
		{
			const producerId = this.room.producerIdOn(this.router, producer.id);

			if (consumed.has(producer.id) || !producerId)
				continue;

			if (!this.router.canConsume({ producerId, rtpCapabilities }))
			{
				throw new HttpError(422,
					`this browser cannot receive ${producer.rtpParameters.codecs[0].mimeType}`);
			}

			let consumer;

			try
			{
				consumer = await transport.consume({
					producerId, rtpCapabilities, paused : true, appData : { sourceProducerId: producer.id }
				});
			}
			catch (error)
			{
				// The publisher left between listing and consuming: nothing to watch.
				logger.debug('consume() | producer went away [viewer:%s, producer:%s, error:%s]', this.id, producer.id, error.message);
				continue;
			}

			this._consumers.set(consumer.id, consumer);
			consumer.observer.once('close', () =>
			{
				this._consumers.delete(consumer.id);
				this.emit('consumerclosed', consumer.id);
			});
			created.push(consumer);
		}

		return created;
	}

	async resume(consumerIds)
	{
		for (const id of consumerIds)
		{
			const consumer = this._consumers.get(id);

			if (!consumer)
				throw new HttpError(404, `viewer '${this.id}' has no consumer '${id}'`);
			await consumer.resume();
		}
	}

	close()
	{
		if (this._closed)
			return;
		this._closed = true;

		if (this.transport)
			this.transport.close();
		logger.info('close() | viewer left [room:%s, viewer:%s]', this.room.id, this.id);
		this.emit('close');
	}
}

function webRtcTransportOptions(config)
{
	return {
		listenIps : [ { ip: config.listenIp, announcedIp: config.announcedIp } ],
		enableUdp : true,
		enableTcp : true,
		preferUdp : true,
		initialAvailableOutgoingBitrate : 3000000
	};
}

module.exports = { Viewer, webRtcTransportOptions };
