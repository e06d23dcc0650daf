'use strict';

// SDP for WHIP (RFC 9725): mediasoup speaks no SDP (mediasoup issue #979), so the
// offer of a publisher is turned into Producer RTP parameters here, and the answer
// is written from the WebRtcTransport's ICE/DTLS parameters.
//
// H.264 profile policy: OBS signals `profile-level-id=42e01f` (libdatachannel's
// default) while x264 encodes High profile; other publishers signal High
// (64xxxx) or Main (4dxxxx) outright. The profile that matters for decoding is the
// one in the SPS inside the stream, and browsers' H.264 decoders (FFmpeg in
// Chromium, VideoToolbox in Safari) decode all three. mediasoup, however, only
// lets a viewer consume a producer whose *signalled* profile the viewer lists,
// and Debian's Chromium does not list High. So the answer echoes whatever the
// publisher offered (it stays happy), and the Producer is declared with the one
// router codec every WebRTC browser lists: packetization-mode 1, 42e01f.

const sdpTransform = require('sdp-transform');

const { HttpError } = require('./errors');

// The codec every room router offers viewers for H.264 (see the policy above).
const ROUTER_H264_PARAMETERS =
{
	'packetization-mode'      : 1,
	'profile-level-id'        : '42e01f',
	'level-asymmetry-allowed' : 1
};

const ROUTER_MEDIA_CODECS =
[
	{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
	{ kind: 'video', mimeType: 'video/H264', clockRate: 90000, parameters: ROUTER_H264_PARAMETERS },
	{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000 }
];

const SUPPORTED_RTCP_FEEDBACK = new Set([ 'nack', 'nack pli', 'ccm fir', 'goog-remb', 'transport-cc' ]);

function parseOffer(text)
{
	let offer;

	try
	{
		offer = sdpTransform.parse(text);
	}
	catch (error)
	{
		throw new HttpError(400, `SDP offer does not parse: ${error.message}`);
	}

	if (!offer || offer.version !== 0 || !Array.isArray(offer.media) || offer.media.length === 0)
		throw new HttpError(400, 'SDP offer has no v=0 line or no m= sections');

	const fingerprint = offer.fingerprint || (offer.media.find((m) => m.fingerprint) || {}).fingerprint;
	const setup = offer.setup || (offer.media.find((m) => m.setup) || {}).setup;

	if (!fingerprint)
		throw new HttpError(400, 'SDP offer has no a=fingerprint (DTLS is required)');

	if (!setup || ![ 'actpass', 'active', 'passive' ].includes(setup))
		throw new HttpError(400, `SDP offer has a=setup '${setup}', expected actpass, active or passive`);

	return { offer, fingerprint, setup };
}

// Remote DTLS parameters for transport.connect(): an offer that can take either
// role (actpass) or insists on the client role gets the client role; mediasoup
// is then the DTLS server and the answer says a=setup:passive.
function dtlsParametersFromOffer({ fingerprint, setup })
{
	return {
		role         : setup === 'passive' ? 'server' : 'client',
		fingerprints : [ { algorithm: fingerprint.type.toLowerCase(), value: fingerprint.hash } ]
	};
}

function codecKey(rtp)
{
	return `${rtp.codec.toLowerCase()}/${rtp.rate}${rtp.encoding ? `/${rtp.encoding}` : ''}`;
}

function fmtpOf(media, payload)
{
	const line = (media.fmtp || []).find((f) => f.payload === payload);

	return line ? line.config : '';
}

// The first codec in the publisher's own order of preference that a room carries.
function chooseCodec(media)
{
	for (const rtp of media.rtp || [])
	{
		const key = codecKey(rtp);
		const params = sdpTransform.parseParams(fmtpOf(media, rtp.payload));

		if (media.type === 'audio' && key === 'opus/48000/2')
			return { rtp, mimeType: 'audio/opus', parameters: params };

		if (media.type === 'video' && key === 'vp8/90000')
			return { rtp, mimeType: 'video/VP8', parameters: {} };

		// packetization-mode 0 (single NAL) is what a WHIP client falls back to when
		// it cannot fragment; browsers send mode 1 and mediasoup forwards mode 1.
		if (media.type === 'video' && key === 'h264/90000' && Number(params['packetization-mode']) === 1)
			return { rtp, mimeType: 'video/H264', parameters: { ...ROUTER_H264_PARAMETERS } };
	}

	return null;
}

function rtxFor(media, payload)
{
	return (media.rtp || []).find((rtp) =>
		rtp.codec.toLowerCase() === 'rtx' &&
		Number(sdpTransform.parseParams(fmtpOf(media, rtp.payload)).apt) === payload);
}

function feedbackFor(media, payload)
{
	return (media.rtcpFb || [])
		.filter((fb) => fb.payload === '*' || Number(fb.payload) === payload)
		.map((fb) => ({ type: fb.type, parameter: fb.subtype || '' }))
		.filter((fb) => SUPPORTED_RTCP_FEEDBACK.has(`${fb.type} ${fb.parameter}`.trim()));
}

function headerExtensionsFor(media, routerCapabilities)
{
	return (media.ext || [])
		.filter((ext) => !ext['encrypt-uri'] && routerCapabilities.headerExtensions.some((cap) =>
			cap.kind === media.type && cap.uri === ext.uri && cap.direction !== 'sendonly'))
		.map((ext) => ({ uri: ext.uri, id: ext.value }));
}

// a=ssrc lines (with FID groups for RTX) as OBS, aiortc and browsers send them,
// or a=rid lines for simulcast (OBS 32.1+).
function encodingsFor(media)
{
	const rids = (media.rids || []).filter((rid) => rid.direction === 'send').map((rid) => String(rid.id));

	if (rids.length > 0)
		return simulcastOrder(rids).map((rid) => ({ rid }));

	const ssrcs = [ ...new Set((media.ssrcs || []).map((line) => line.id)) ];
	const rtxOf = new Map();

	for (const group of media.ssrcGroups || [])
	{
		if (group.semantics !== 'FID')
			continue;
		const [ ssrc, rtx ] = group.ssrcs.split(/\s+/).map(Number);

		rtxOf.set(ssrc, rtx);
	}

	const rtxSsrcs = new Set(rtxOf.values());

	return ssrcs
		.filter((ssrc) => !rtxSsrcs.has(ssrc))
		.map((ssrc) => (rtxOf.has(ssrc) ? { ssrc, rtx: { ssrc: rtxOf.get(ssrc) } } : { ssrc }));
}

// mediasoup wants a simulcast Producer's encodings from the smallest layer to the
// largest, and gives viewers the last one. SDP says nothing about sizes: the rids'
// order is the sender's preference. OBS names its layers 0, 1, 2, ... with 0 the
// full-size output and each next one smaller (its WHIPSimulcastEncoders), so
// all-numeric rids go from the highest number down; other rids keep their order.
function simulcastOrder(rids)
{
	if (!rids.every((rid) => /^\d+$/.test(rid)))
		return rids;

	return [ ...rids ].sort((a, b) => Number(b) - Number(a));
}

// One entry per m= section: either { accepted: false } or the answer's codec
// choice plus the Producer's rtpParameters.
function planFromOffer(offer, routerCapabilities)
{
	const sections = offer.media.map((media) =>
	{
		const direction = media.direction || offer.direction || 'sendrecv';
		const usable = [ 'audio', 'video' ].includes(media.type) && media.port !== 0 &&
			[ 'sendonly', 'sendrecv' ].includes(direction);
		const codec = usable ? chooseCodec(media) : null;

		if (!codec)
			return { media, accepted: false };

		if (media.mid === undefined)
			throw new HttpError(400, `SDP offer m=${media.type} has no a=mid (BUNDLE needs one per section)`);

		const encodings = encodingsFor(media);

		if (encodings.length === 0)
			throw new HttpError(400, `SDP offer m=${media.type} mid ${media.mid} has neither a=ssrc nor a=rid lines`);

		const rtx = media.type === 'video' ? rtxFor(media, codec.rtp.payload) : undefined;
		const rtcpFeedback = feedbackFor(media, codec.rtp.payload);
		const codecs =
		[
			{
				mimeType    : codec.mimeType,
				payloadType : codec.rtp.payload,
				clockRate   : codec.rtp.rate,
				channels    : codec.rtp.encoding ? Number(codec.rtp.encoding) : undefined,
				parameters  : codec.parameters,
				rtcpFeedback
			}
		];

		if (rtx)
		{
			codecs.push({
				mimeType    : `${media.type}/rtx`,
				payloadType : rtx.payload,
				clockRate   : rtx.rate,
				parameters  : { apt: codec.rtp.payload }
			});
		}

		const cnameLine = (media.ssrcs || []).find((line) => line.attribute === 'cname');
		const rtpParameters =
		{
			mid              : String(media.mid),
			codecs,
			headerExtensions : headerExtensionsFor(media, routerCapabilities),
			encodings,
			rtcp             : { cname: cnameLine ? cnameLine.value : undefined, reducedSize: true }
		};

		return { media, accepted: true, kind: media.type, codec, rtx, rtcpFeedback, rtpParameters };
	});

	if (!sections.some((section) => section.accepted))
	{
		throw new HttpError(400,
			'SDP offer has no usable send section: need H.264 (packetization-mode=1) or VP8 video, or Opus audio');
	}

	return sections;
}

function candidatesToSdp(iceCandidates)
{
	return iceCandidates.map((candidate) => ({
		foundation : candidate.foundation,
		component  : 1,
		transport  : candidate.protocol,
		priority   : candidate.priority,
		ip         : candidate.ip,
		port       : candidate.port,
		type       : candidate.type,
		tcptype    : candidate.protocol === 'tcp' ? candidate.tcpType : undefined
	}));
}

// The common skeleton of an answer from mediasoup's side of a WebRtcTransport.
function answerSkeleton(transport, dtlsRole)
{
	const fingerprint = transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256');

	return {
		version    : 0,
		origin     :
		{
			username       : 'privastream-sfu',
			sessionId      : String(Date.now()),
			sessionVersion : 1,
			netType        : 'IN',
			ipVer          : 4,
			address        : '0.0.0.0'
		},
		name        : '-',
		timing      : { start: 0, stop: 0 },
		// mediasoup is ICE-lite: the client runs the checks, we only answer them.
		icelite     : 'ice-lite',
		fingerprint : { type: fingerprint.algorithm, hash: fingerprint.value },
		setup       : dtlsRole === 'server' ? 'passive' : 'active',
		msidSemantic : { semantic: 'WMS', token: '*' },
		groups      : [],
		media       : [],
		iceUfrag    : transport.iceParameters.usernameFragment,
		icePwd      : transport.iceParameters.password,
		candidates  : candidatesToSdp(transport.iceCandidates)
	};
}

function rejectedSection(media)
{
	return {
		type       : media.type,
		port       : 0,
		protocol   : media.protocol,
		payloads   : String(media.payloads || '0').split(' ')[0],
		connection : { version: 4, ip: '0.0.0.0' },
		mid        : media.mid,
		direction  : 'inactive'
	};
}

function mediaSectionBase(transport, media, dtlsRole, direction)
{
	return {
		type            : media.type,
		port            : 7,
		protocol        : media.protocol,
		connection      : { version: 4, ip: '127.0.0.1' },
		mid             : String(media.mid),
		direction,
		iceUfrag        : transport.iceParameters.usernameFragment,
		icePwd          : transport.iceParameters.password,
		candidates      : candidatesToSdp(transport.iceCandidates),
		endOfCandidates : 'end-of-candidates',
		setup           : dtlsRole === 'server' ? 'passive' : 'active',
		rtcpMux         : 'rtcp-mux',
		rtcpRsize       : 'rtcp-rsize'
	};
}

function writeAnswer(skeleton, sections)
{
	// ICE and candidates live in each m= section; the session copies were only
	// there to build them.
	delete skeleton.iceUfrag;
	delete skeleton.icePwd;
	delete skeleton.candidates;
	skeleton.media = sections;
	skeleton.groups = [ {
		type : 'BUNDLE',
		mids : sections.filter((m) => m.port !== 0).map((m) => m.mid).join(' ')
	} ];

	return sdpTransform.write(skeleton);
}

// The WHIP answer: recvonly sections echoing the publisher's payload types,
// fmtp lines and header-extension ids.
function whipAnswer(transport, plan, dtlsRole)
{
	const skeleton = answerSkeleton(transport, dtlsRole);
	const sections = plan.map((section) =>
	{
		if (!section.accepted)
			return rejectedSection(section.media);

		const { media, codec, rtx, rtcpFeedback, rtpParameters } = section;
		const rtp = [ codec.rtp, ...(rtx ? [ rtx ] : []) ];
		const answer = mediaSectionBase(transport, media, dtlsRole, 'recvonly');

		answer.payloads = rtp.map((r) => r.payload).join(' ');
		answer.rtp = rtp.map((r) => ({ payload: r.payload, codec: r.codec, rate: r.rate, encoding: r.encoding }));
		answer.fmtp = rtp
			.map((r) => ({ payload: r.payload, config: fmtpOf(media, r.payload) }))
			.filter((f) => f.config);
		answer.rtcpFb = rtcpFeedback.map((fb) => ({
			payload : codec.rtp.payload, type : fb.type, subtype : fb.parameter || undefined
		}));
		answer.ext = rtpParameters.headerExtensions.map((ext) => ({ value: ext.id, uri: ext.uri }));

		if (media.rids && rtpParameters.encodings[0].rid)
		{
			answer.rids = media.rids.map((rid) => ({ id: rid.id, direction: 'recv' }));
			answer.simulcast = { dir1: 'recv', list1: media.simulcast ? media.simulcast.list1 : '' };
		}

		return answer;
	});

	return writeAnswer(skeleton, sections);
}

const WHEP_CODEC_KEYS = { 'audio/opus': 'opus/48000/2', 'video/H264': 'h264/90000', 'video/VP8': 'vp8/90000' };

// WHEP: which of the player's offered codecs can carry each Producer of the room,
// with the player's payload types. A player that does not list a codec of the
// room's stream gets a 400 naming it.
function whepCodecsFromOffer(offer, producers)
{
	const mediaCodecs = [];
	const sections = offer.media.map((media) =>
	{
		const direction = media.direction || offer.direction || 'sendrecv';
		const producer = producers.find((p) => p.kind === media.type);

		if (!producer || media.port === 0 || ![ 'recvonly', 'sendrecv' ].includes(direction))
			return { media, accepted: false };

		const wanted = producer.rtpParameters.codecs[0].mimeType;
		const rtp = (media.rtp || []).find((r) =>
		{
			const params = sdpTransform.parseParams(fmtpOf(media, r.payload));

			return codecKey(r) === WHEP_CODEC_KEYS[wanted] &&
				(wanted !== 'video/H264' || (Number(params['packetization-mode']) === 1 &&
					/^42(e0|c0)/i.test(String(params['profile-level-id'] || ''))));
		});

		if (!rtp)
			throw new HttpError(400, `WHEP offer m=${media.type} does not offer ${wanted}${wanted === 'video/H264' ? ' (packetization-mode=1, constrained baseline)' : ''}`);
		if (media.mid === undefined)
			throw new HttpError(400, `WHEP offer m=${media.type} has no a=mid`);

		const routerCodec = ROUTER_MEDIA_CODECS.find((c) => c.mimeType === wanted);

		mediaCodecs.push({ ...routerCodec, preferredPayloadType: rtp.payload });

		return { media, accepted: true, producer, rtp };
	});

	if (!sections.some((section) => section.accepted))
		throw new HttpError(400, 'WHEP offer has no recvonly audio or video section');

	// Video last: mediasoup takes each video codec's RTX payload type from its free
	// pool, which must not collide with a payload type asked for after it.
	mediaCodecs.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'audio' ? -1 : 1));

	return { sections, mediaCodecs };
}

// The WHEP answer: sendonly sections with the player's payload types (the router
// was built with them) and the Consumers' SSRCs.
function whepAnswer(transport, sections, dtlsRole)
{
	const skeleton = answerSkeleton(transport, dtlsRole);
	const media = sections.map((section) =>
	{
		if (!section.accepted || !section.consumer)
			return rejectedSection(section.media);

		const { consumer, rtp } = section;
		const answer = mediaSectionBase(transport, section.media, dtlsRole, 'sendonly');
		const codec = consumer.rtpParameters.codecs[0];
		const ssrc = consumer.rtpParameters.encodings[0].ssrc;
		const cname = consumer.rtpParameters.rtcp.cname;

		answer.payloads = String(rtp.payload);
		answer.rtp = [ { payload: rtp.payload, codec: rtp.codec, rate: rtp.rate, encoding: rtp.encoding } ];
		answer.fmtp = Object.keys(codec.parameters || {}).length > 0 ? [ {
			payload : rtp.payload,
			config  : Object.entries(codec.parameters).map(([ k, v ]) => `${k}=${v}`).join(';')
		} ] : [];
		answer.rtcpFb = (codec.rtcpFeedback || []).map((fb) => ({
			payload : rtp.payload, type : fb.type, subtype : fb.parameter || undefined
		}));
		answer.ssrcs = [
			{ id: ssrc, attribute: 'cname', value: cname },
			{ id: ssrc, attribute: 'msid', value: `privastream ${consumer.kind}` }
		];

		return answer;
	});

	return writeAnswer(skeleton, media);
}

module.exports =
{
	whepCodecsFromOffer,
	whepAnswer,
	ROUTER_MEDIA_CODECS,
	parseOffer,
	dtlsParametersFromOffer,
	planFromOffer,
	whipAnswer
};
