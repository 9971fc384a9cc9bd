// The AWS SDK warns on Node 20 that its later versions will need Node 22: not the auditor's concern, and not part of
// their report. Its own switch turns it off (imported before the SDK is).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
