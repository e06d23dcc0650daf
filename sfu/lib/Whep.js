'use strict';

// WHEP playback (draft-ietf-wish-whep): a standard player POSTs a recvonly offer and
// gets a sendonly answer. The player offers, so the answer must send with *its*
// payload types, while a mediasoup Consumer sends with its router's. So WHEP
// players get routers of their own, built with the payload types they offered
// and fed by a pipe from the source router (Room.js, pipeWithOwnIds), on any
// worker; players offering the same ones share a router.
//
// The room must be live: a WHEP session cannot renegotiate, so it carries the
// current publisher's stream and ends with it (players reconnect).

const { EventEmitter } = require('events');

const { HttpError } = require('./errors');
const sdp = require('./sdp');

class WhepSession extends EventEmitter
{
	static async create({ room, offerText })
	{
		if (!room.live)
			throw new HttpError(404, `room '${room.id}' is not live`);

		const parsed = sdp.parseOffer(offerText);
		const { sections, mediaCodecs } = sdp.whepCodecsFromOffer(parsed.offer, room.producers);
		const viewer = await room.addViewer({ kind: 'whep', mediaCodecs });

		try
		{
			const remoteDtls = sdp.dtlsParametersFromOffer(parsed);

			await viewer.createTransport();
			await viewer.connect(remoteDtls);
			const rtpCapabilities = { codecs: mediaCodecs.map((c) => ({ ...c, rtcpFeedback: [ { type: 'nack' }, { type: 'nack', parameter: 'pli' } ] })), headerExtensions: [] };
			const consumers = await viewer.consume(rtpCapabilities);

			await viewer.resume(consumers.map((c) => c.id));
			for (const section of sections.filter((s) => s.accepted))
				section.consumer = consumers.find((c) => c.appData.sourceProducerId === section.producer.id);

			const answer = sdp.whepAnswer(viewer.transport, sections, remoteDtls.role === 'client' ? 'server' : 'client');

			return { session: new WhepSession({ room, viewer }), answer };
		}
		catch (error)
		{
			viewer.close();
			throw error instanceof HttpError ? error : new HttpError(400, `WHEP offer was refused: ${error.message}`);
		}
	}

	constructor({ room, viewer })
	{
		super();
		this.id = viewer.id;
		this.room = room;
		this._viewer = viewer;
		viewer.once('close', () => this.emit('close'));
		// The stream this session was negotiated for is gone: end the session.
		viewer.on('consumerclosed', () => viewer.close());
	}

	close()
	{
		this._viewer.close();
	}
}

module.exports = { WhepSession };
