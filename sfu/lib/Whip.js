'use strict';

// A WHIP session (RFC 9725): the publisher's WebRtcTransport on the room's source
// router and the Producers made from its offer. The HTTP resource
// /whip/{room}/{sessionId} lives exactly as long as this object.

const crypto = require('crypto');
const { EventEmitter } = require('events');

const { HttpError } = require('./errors');
const { Logger } = require('./Logger');
const sdp = require('./sdp');
const { webRtcTransportOptions } = require('./Viewer');

const logger = new Logger('whip');

// How often the publisher's received-bytes counter is sampled for the 409 policy.
const MEDIA_SAMPLE_MS = 500;

class WhipSession extends EventEmitter
{
	// Returns { session, answer }. Throws HttpError(400) for an unusable offer.
	static async create({ room, offerText, config })
	{
		const parsed = sdp.parseOffer(offerText);
		const plan = sdp.planFromOffer(parsed.offer, room.rtpCapabilities);
		const remoteDtls = sdp.dtlsParametersFromOffer(parsed);
		const transport = await room.sourceRouter.createWebRtcTransport(webRtcTransportOptions(config));
		const producers = [];

		try
		{
			await transport.connect({ dtlsParameters: remoteDtls });

			for (const section of plan.filter((s) => s.accepted))
				producers.push(await transport.produce({ kind: section.kind, rtpParameters: section.rtpParameters }));
		}
		catch (error)
		{
			transport.close();
			throw new HttpError(400, `SDP offer was refused by the media server: ${error.message}`);
		}

		const localRole = remoteDtls.role === 'client' ? 'server' : 'client';
		const answer = sdp.whipAnswer(transport, plan, localRole);
		const session = new WhipSession({ room, transport, producers, config });

		room.setPublisher(session);

		for (const producer of producers)
			await room.addProducer(producer);

		logger.info('create() | publisher connected [room:%s, session:%s, codecs:%s]', room.id, session.id,
			producers.map((p) => p.rtpParameters.codecs[0].mimeType).join(','));

		return { session, answer };
	}

	constructor({ room, transport, producers, config })
	{
		super();
		this.id = crypto.randomUUID();
		this.room = room;
		this.transport = transport;
		this.producers = producers;
		this._staleMs = config.publisherStaleMs;
		this._closed = false;
		this._packetsReceived = 0;
		this._lastMediaAt = Date.now();
		this._sampler = setInterval(() => this._sampleMedia(), MEDIA_SAMPLE_MS);
		transport.on('dtlsstatechange', (state) =>
		{
			if (state === 'failed' || state === 'closed')
			{
				logger.warn('dtlsstatechange() | publisher DTLS %s, ending session [room:%s, session:%s]', state, room.id, this.id);
				this.close();
			}
		});
		transport.observer.once('close', () => this.close());
	}

	// RTP packets only: the transport's byte counters also grow with STUN and RTCP,
	// which a publisher that stopped sending media may still exchange.
	async _sampleMedia()
	{
		try
		{
			let packets = 0;

			for (const producer of this.producers)
			{
				for (const stat of await producer.getStats())
					packets += stat.packetCount || 0;
			}

			if (packets > this._packetsReceived)
			{
				this._packetsReceived = packets;
				this._lastMediaAt = Date.now();
			}
		}
		catch (error)
		{
			// The transport closed between two samples; close() stops the timer.
		}
	}

	// 409 policy: a new publisher is refused while this one is sending; once it has
	// sent nothing for `publisherStaleMs` (a crash or network loss without DELETE)
	// the next WHIP POST replaces it.
	isStale(now = Date.now())
	{
		return now - this._lastMediaAt > this._staleMs;
	}

	describe()
	{
		return {
			session       : this.id,
			kind          : 'whip',
			packetsReceived : this._packetsReceived,
			idleMs        : Date.now() - this._lastMediaAt
		};
	}

	close()
	{
		if (this._closed)
			return;
		this._closed = true;
		clearInterval(this._sampler);
		// Closing the transport closes the producers, which closes every pipe
		// producer and consumer fed by them.
		this.transport.close();
		logger.info('close() | publisher session ended [room:%s, session:%s]', this.room.id, this.id);
		this.room.clearPublisher(this);
		this.emit('close');
	}
}

module.exports = { WhipSession };
