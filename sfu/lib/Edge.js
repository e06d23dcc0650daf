'use strict';

// Origin -> edge across machines. An edge SFU (SFU_ORIGIN_URL set) serves viewers
// for rooms whose publisher is on the origin: the edge opens an SRTP PipeTransport,
// asks the origin over its admin API (POST /api/pipe/{room}) to pipe the room's
// producers into it, and polls that pipe (GET /api/pipe/{room}/{id}) to follow the
// publisher as it comes, goes and reconnects. Each edge is one consumer per kind
// at the origin however many viewers it serves; edges can feed edges.
//
//   PipeOut     the origin's side: one PipeTransport + a pipe Consumer per Producer
//   OriginFeed  the edge's side: the room's "publisher", making pipe Producers

const crypto = require('crypto');
const { EventEmitter } = require('events');

const { HttpError } = require('./errors');
const { Logger } = require('./Logger');

const logger = new Logger('edge');

// The edge polls every POLL_MS; an origin pipe not polled for LEASE_MS is closed.
const POLL_MS = 1000;
const LEASE_MS = 15000;

function pipeTransportOptions(config)
{
	return { listenIp: { ip: config.listenIp, announcedIp: config.announcedIp }, enableSrtp: true };
}

class PipeOut extends EventEmitter
{
	static async create({ room, remote, config })
	{
		if (!remote || typeof remote.ip !== 'string' || !Number.isInteger(remote.port) || !remote.srtpParameters)
			throw new HttpError(400, 'pipe request needs ip, port and srtpParameters');

		const transport = await room.sourceRouter.createPipeTransport(pipeTransportOptions(config));

		try
		{
			await transport.connect({ ip: remote.ip, port: remote.port, srtpParameters: remote.srtpParameters });
		}
		catch (error)
		{
			transport.close();
			throw new HttpError(400, `cannot connect the pipe: ${error.message}`);
		}

		logger.info('create() | piping room to an edge [room:%s, edge:%s:%s]', room.id, remote.ip, remote.port);

		return new PipeOut({ room, transport });
	}

	constructor({ room, transport })
	{
		super();
		this.id = crypto.randomUUID();
		this.room = room;
		this._transport = transport;
		this._consumers = new Map();
		this._closed = false;
		this._leaseTimer = null;
		this._renewLease();
		transport.observer.once('close', () => this.close());
	}

	_renewLease()
	{
		clearTimeout(this._leaseTimer);
		this._leaseTimer = setTimeout(() =>
		{
			logger.warn('_renewLease() | edge stopped polling, closing pipe [room:%s, pipe:%s]', this.room.id, this.id);
			this.close();
		}, LEASE_MS);
	}

	// Pipes every current producer of the room, then says what the edge must mirror.
	async describe()
	{
		this._renewLease();

		for (const producer of this.room.producers)
		{
			if (this._consumers.has(producer.id))
				continue;
			const consumer = await this._transport.consume({ producerId: producer.id });

			this._consumers.set(producer.id, consumer);
			consumer.observer.once('close', () => this._consumers.delete(producer.id));
		}

		return {
			id             : this.id,
			ip             : this._transport.tuple.localIp,
			port           : this._transport.tuple.localPort,
			srtpParameters : this._transport.srtpParameters,
			producers      : [ ...this._consumers.values() ].map((c) => ({
				id            : c.producerId,
				kind          : c.kind,
				rtpParameters : c.rtpParameters,
				paused        : c.producerPaused
			}))
		};
	}

	close()
	{
		if (this._closed)
			return;
		this._closed = true;
		clearTimeout(this._leaseTimer);
		this._transport.close();
		logger.info('close() | pipe to edge closed [room:%s, pipe:%s]', this.room.id, this.id);
		this.emit('close');
	}
}

class OriginFeed
{
	constructor({ room, config })
	{
		this.id = `origin-feed-${crypto.randomUUID()}`;
		// An edge room exists for its viewers: it closes with the last of them.
		this.endsWithLastViewer = true;
		this._room = room;
		this._config = config;
		this._closed = false;
		this._transport = null;
		this._pipeId = null;
		this._producers = new Map();
		this._timer = null;
		this._poll();
	}

	isStale()
	{
		return false;
	}

	describe()
	{
		return { session: this.id, kind: 'origin-feed', origin: this._config.originUrl, pipe: this._pipeId };
	}

	async _request(method, path, body)
	{
		const response = await fetch(`${this._config.originUrl}${path}`, {
			method,
			headers : { Authorization: `Bearer ${this._config.originToken}`, 'Content-Type': 'application/json' },
			body    : body ? JSON.stringify(body) : undefined
		});

		return { status: response.status, body: response.headers.get('content-type') === 'application/json' ? await response.json() : await response.text() };
	}

	_poll()
	{
		this._timer = setTimeout(async () =>
		{
			try
			{
				await this._sync();
			}
			catch (error)
			{
				logger.warn('_poll() | origin unreachable, retrying [room:%s, error:%s]', this._room.id, error.message);
				this._reset();
			}
			if (!this._closed)
				this._poll();
		}, this._pipeId ? POLL_MS : POLL_MS / 2);
	}

	async _sync()
	{
		if (this._closed)
			return;
		const roomPath = `/api/pipe/${encodeURIComponent(this._room.id)}`;

		if (!this._pipeId)
		{
			this._transport = this._transport || await this._room.sourceRouter.createPipeTransport(pipeTransportOptions(this._config));
			const { status, body } = await this._request('POST', roomPath, {
				ip             : this._transport.tuple.localIp,
				port           : this._transport.tuple.localPort,
				srtpParameters : this._transport.srtpParameters
			});

			// 404: the origin has no such room yet (no publisher); ask again later.
			if (status === 404)
				return;
			if (status !== 201)
				throw new Error(`origin answered ${status}: ${typeof body === 'string' ? body.trim() : JSON.stringify(body)}`);
			await this._transport.connect({ ip: body.ip, port: body.port, srtpParameters: body.srtpParameters });
			this._pipeId = body.id;
			logger.info('_sync() | piped from origin [room:%s, pipe:%s]', this._room.id, this._pipeId);
			await this._mirror(body.producers);

			return;
		}

		const { status, body } = await this._request('GET', `${roomPath}/${this._pipeId}`);

		if (status === 404)
		{
			// The origin room closed (publisher gone): start over with a fresh pipe.
			this._reset();

			return;
		}
		if (status !== 200)
			throw new Error(`origin answered ${status}`);
		await this._mirror(body.producers);
	}

	async _mirror(remoteProducers)
	{
		const wanted = new Set(remoteProducers.map((p) => p.id));

		for (const [ id, producer ] of this._producers)
		{
			if (!wanted.has(id))
				producer.close();
		}

		for (const remote of remoteProducers)
		{
			if (this._producers.has(remote.id))
				continue;
			const producer = await this._transport.produce({
				id            : remote.id,
				kind          : remote.kind,
				rtpParameters : remote.rtpParameters,
				paused        : remote.paused
			});

			this._producers.set(remote.id, producer);
			producer.observer.once('close', () => this._producers.delete(remote.id));
			await this._room.addProducer(producer);
		}
	}

	_reset()
	{
		if (this._transport)
			this._transport.close();
		this._transport = null;
		this._pipeId = null;
	}

	close()
	{
		if (this._closed)
			return;
		this._closed = true;
		clearTimeout(this._timer);
		if (this._pipeId)
		{
			this._request('DELETE', `/api/pipe/${encodeURIComponent(this._room.id)}/${this._pipeId}`)
				.catch(() => { /* the origin's lease closes it anyway */ });
		}
		this._reset();
		this._room.clearPublisher(this);
	}
}

module.exports = { PipeOut, OriginFeed };
