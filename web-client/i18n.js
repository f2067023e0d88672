// @ts-check
/**
 * All user-visible strings of the web client, in Japanese and English, and
 * the small machinery that puts them into the page. Nothing else in
 * web-client/ holds a user-visible string: HTML elements name a key with
 * `data-i18n` (text), `data-i18n-aria-label`, `data-i18n-title` or
 * `data-i18n-placeholder`, and scripts call `t(key)`.
 *
 * The language follows `navigator.languages` (ja* → Japanese, anything else
 * → English) until the user picks one; the pick is kept in localStorage.
 * @module i18n
 */

/** @typedef {'ja' | 'en'} Lang */

/** Both dictionaries have exactly the same keys. */
const strings = {
  ja: {
    'app.name': 'kaigi',
    'app.tagline': '庁内ネットワーク専用のビデオ会議',
    'lang.label': '言語',
    'sentence.sep': '',

    // Landing page
    'landing.title': 'kaigi — ビデオ会議',
    'landing.heading': 'ビデオ会議',
    'landing.lead': 'インストール不要。ブラウザだけで、庁内ネットワークの中で会議ができます。',
    'landing.create.heading': '新しい会議を作成',
    'landing.create.text': '会議名を自動で決めて、すぐに会議を始めます。',
    'landing.create.button': '会議を作成',
    'landing.join.heading': '会議に参加',
    'landing.join.text': '会議名または会議のリンクを入力してください。',
    'landing.join.label': '会議名',
    'landing.join.placeholder': '例: soumu-ka',
    'landing.join.button': '会議に入る',
    'landing.join.hint': '半角英数字と - _ . が使えます(64文字まで)。',
    'landing.invalid.empty': '会議名を入力してください。',
    'landing.invalid.chars': '会議名に使えない文字が含まれています。半角英数字と - _ . のみ使えます(先頭に . は使えません)。',
    'landing.invalid.length': '会議名は64文字以内にしてください。',
    'landing.footer': '通信はこのサーバーの中だけで行われます。',

    // Header / room
    'room.title': '{room} — kaigi',
    'room.label': '会議名',
    'room.copyLink': 'リンクをコピー',
    'room.linkCopied': '会議のリンクをコピーしました。',
    'room.linkCopyFailed': 'リンクをコピーできませんでした: {link}',
    'room.count': '{n}人が参加中',
    'room.home': 'ホームへ',

    // Pre-join
    'prejoin.heading': '参加の準備',
    'prejoin.text': 'カメラとマイクを確認してから参加してください。',
    'prejoin.nameLabel': '名前',
    'prejoin.namePlaceholder': '例: 山田 太郎',
    'prejoin.nameRequired': '名前を入力してください。',
    'prejoin.join': '参加',
    'prejoin.joining': '接続しています…',
    'prejoin.micLevel': 'マイクの入力レベル',
    'prejoin.previewOff': 'カメラはオフです',
    'prejoin.starting': 'カメラとマイクを準備しています…',
    'prejoin.receiveOnly': 'カメラもマイクも使わずに参加できます(視聴のみ)。',

    // Media errors
    'media.denied': 'カメラとマイクの使用が許可されていません。ブラウザのアドレスバーの設定から許可してください。',
    'media.notFound': 'カメラまたはマイクが見つかりません。',
    'media.inUse': 'カメラまたはマイクがほかのアプリで使用中です。',
    'media.insecure': 'このページは安全な接続(https)で開かれていないため、カメラとマイクを使えません。',
    'media.failed': 'カメラとマイクを使えませんでした。',
    'media.noVideo': 'カメラを使えません(マイクのみで参加します)。',
    'media.noAudio': 'マイクを使えません(カメラのみで参加します)。',

    // Controls
    'ctl.micMute': 'マイクをミュート',
    'ctl.micUnmute': 'マイクのミュートを解除',
    'ctl.camOff': 'カメラをオフ',
    'ctl.camOn': 'カメラをオン',
    'ctl.leave': '退出',
    'ctl.people': '参加者一覧',
    'ctl.noMic': 'マイクなし',
    'ctl.noCam': 'カメラなし',
    'ctl.controls': '会議の操作',

    // Participants
    'people.heading': '参加者',
    'people.you': '(あなた)',
    'people.micMuted': 'マイクはミュート中',
    'people.camOff': 'カメラはオフ',
    'people.close': '参加者一覧を閉じる',
    'grid.label': '参加者の映像',

    // Meeting notices
    'notice.joined': '{name}さんが参加しました。',
    'notice.left': '{name}さんが退出しました。',
    'notice.enableSound': '音声を再生するには、ここをクリックしてください',
    'notice.close': '閉じる',

    // Left
    'left.heading': '会議から退出しました',
    'left.text': 'またいつでもこのリンクから参加できます。',
    'left.rejoin': 'もう一度参加',

    // Errors
    'error.heading': '接続できませんでした',
    'error.lostHeading': '接続が切れました',
    'error.lost': 'サーバーとの接続が切れました。ネットワークを確認して、再接続してください。',
    'error.reconnect': '再接続',
    'error.retry': 'もう一度試す',
    'error.unreachable': 'サーバーに接続できませんでした。ネットワークの状態を確認してください。',
    'error.mediaFailed': '音声・映像の接続を確立できませんでした。ネットワークやファイアウォールの設定を確認してください。',
    'error.code.bad_request': 'サーバーが要求を処理できませんでした。ページを再読み込みしてください。',
    'error.code.invalid_room': 'この会議名は使えません。半角英数字と - _ . のみ、64文字以内で指定してください。',
    'error.code.not_joined': '会議に参加していないため、操作できませんでした。',
    'error.code.already_joined': 'すでに会議に参加しています。',
    'error.code.unsupported_version': 'このページのバージョンはサーバーと合っていません。ページを再読み込みしてください。',
    'error.code.room_full': 'この会議は定員に達しています。しばらくしてからもう一度お試しください。',
    'error.code.unauthorized': 'この会議に参加する権限がありません。正しいリンクを主催者に確認してください。',
    'error.code.bad_sdp': '音声・映像の設定をサーバーが受け付けませんでした。',
    'error.code.server_busy': 'サーバーが混み合っているか、メンテナンス中です。しばらくしてからもう一度お試しください。',
    'ctl.chat': 'チャット',
    'ctl.raiseHand': '挙手',
    'ctl.lowerHand': '手を下ろす',
    'chat.heading': 'チャット',
    'chat.close': 'チャットを閉じる',
    'chat.label': 'メッセージ',
    'chat.placeholder': 'メッセージを入力(Enterで送信)',
    'chat.send': '送信',
    'chat.empty': 'まだメッセージはありません。',
    'people.handRaised': '挙手中',
    'people.moderator': '司会者',
    // Admin page
    'admin.title': '管理 — kaigi',
    'admin.heading': '管理',
    'admin.keyLabel': '管理 API キー',
    'admin.unlock': '開く',
    'admin.lock': '閉じる',
    'admin.keyRefused': 'キーが受け付けられませんでした: {why}',
    'admin.health': 'サーバーの状態',
    'admin.status': '状態',
    'admin.statusOk': '稼働中',
    'admin.statusDraining': '停止処理中',
    'admin.version': 'バージョン',
    'admin.uptime': '稼働時間',
    'admin.minutes': '{n} 分',
    'admin.roomsCount': '会議室',
    'admin.participants': '参加者',
    'admin.viewers': '視聴者',
    'admin.workers': 'ワーカーごとの参加者',
    'admin.rooms': '会議室',
    'admin.noRooms': '使用中の会議室はありません。',
    'admin.room': '会議名',
    'admin.onAir': '配信中',
    'admin.recordingNow': '録画中',
    'admin.yes': 'はい',
    'admin.show': '詳細',
    'admin.record': '録画開始',
    'admin.stopRecording': '録画停止',
    'admin.end': '終了',
    'admin.endConfirm': '会議「{room}」を全員について終了しますか？',
    'admin.roomHeading': '{room}（視聴者 {viewers} 人）',
    'admin.remove': '退出させる',
    'admin.removeConfirm': '{name}さんを退出させますか？',
    'admin.recordings': '録画',
    'admin.noRecordings': '録画はまだありません。',
    'admin.file': 'ファイル',
    'admin.state': '状態',
    'admin.complete': '完了',
    'admin.size': 'サイズ',
    'admin.started': '開始',
    'admin.download': 'ダウンロード',
    'admin.done': '完了しました。',
    'admin.failed': '失敗しました: {why}',

    // Viewer page (broadcasts)
    'watch.title': '{room} の配信 — kaigi',
    'watch.label': '配信',
    'watch.liveBadge': 'ライブ',
    'watch.start': '視聴する',
    'watch.notStarted': '配信はまだ始まっていません。始まると自動で再生します。',
    'watch.ready': '配信中です。「視聴する」を押してください。',
    'watch.checking': '配信の状態を確認しています…',
    'watch.connecting': '接続しています…',
    'watch.playing': '再生中',
    'watch.ended': '配信は終了しました。',
    'watch.retrying': '接続が切れました。再接続しています…',
    'watch.unauthorized': 'この配信を見る権限がありません。配信用のリンクを確認してください。',
    'watch.password': 'パスワード',
    'watch.passwordNeeded': 'この配信にはパスワードが必要です。入力して「視聴する」を押してください。',
    'watch.passwordWrong': 'パスワードが違います。',
    'watch.tooMany': '間違いが続いたため、しばらく待ってからもう一度お試しください。',
    'watch.failed': '配信を再生できませんでした。しばらくしてから再度お試しください。',
    'watch.volume': '音量',
    'watch.mute': '音を消す',
    'watch.unmute': '音を出す',
    'watch.fullscreen': '全画面表示',
    'watch.secondPicture': '2 つ目の映像（手話通訳など）',
    'watch.note': '庁内ネットワークの中だけで配信されています。',
    'people.live': '配信中',
    'people.setLive': '配信に出す',
    'people.setLiveName': '{name}さんを視聴者向けの配信に出す',
    'people.addLive': '並べて配信',
    'people.addLiveName': '{name}さんを配信に並べて映す（手話通訳など）',
    'people.unsetLive': '配信から外す',
    'people.unsetLiveName': '{name}さんを配信から外す（最初の発信者に戻す）',
    'people.mute': 'ミュート',
    'people.muteName': '{name}さんのマイクをミュート',
    'people.remove': '退出させる',
    'people.removeName': '{name}さんを会議から退出させる',
    'mod.heading': '司会者の操作',
    'mod.lock': '会議をロック(新しい参加を止める)',
    'mod.lobby': '待合室を使う(参加に許可が必要)',
    'mod.end': '全員の会議を終了',
    'mod.endConfirm': '全員の会議を終了しますか?',
    'lobby.heading': '待合室',
    'lobby.admit': '許可',
    'lobby.admitName': '{name}さんの入室を許可',
    'lobby.deny': '拒否',
    'lobby.denyName': '{name}さんの入室を拒否',
    'notice.handRaised': '{name}さんが手を挙げました。',
    'notice.mutedByModerator': '{by}さんがあなたのマイクをミュートしました。ミュートの解除はあなただけができます。',
    'notice.videoOffByModerator': '{by}さんがあなたのカメラをオフにしました。オンに戻せるのはあなただけです。',
    'notice.lobbyRequest': '{name}さんが待合室で待っています。',
    'notice.moderator': 'あなたが司会者になりました。',
    'notice.locked': '会議がロックされました。',
    'notice.unlocked': '会議のロックが解除されました。',
    'waiting.heading': '司会者の許可を待っています',
    'waiting.text': '司会者が入室を許可するまで、このままお待ちください。',
    'left.removedHeading': '会議から退出させられました',
    'left.removedText': '{by}さん(司会者)があなたを会議から退出させました。',
    'left.endedHeading': '会議は終了しました',
    'left.endedText': '{by}さん(司会者)が会議を終了しました。',
    'left.deniedHeading': '参加できませんでした',
    'left.deniedText': '司会者が入室を許可しませんでした。',
    'error.code.room_locked': 'この会議は司会者によってロックされています。',
    'error.code.rate_limited': 'メッセージの送信が速すぎます。少し待ってから送ってください。',
    'error.code.forbidden': 'この操作は司会者だけができます。',
    'error.code.not_found': '相手はもう会議にいません。',
    'ctl.share': '画面共有',
    'ctl.stopShare': '共有を停止',
    'share.region': '共有中の画面',
    'share.by': '{name}さんの画面',
    'share.mine': 'あなたの画面を共有しています',
    'share.failed': '画面を共有できませんでした。',
    'notice.sharing': '{name}さんが画面共有を始めました。',
    'mod.shares': '複数人の画面共有を許可',
    'error.code.share_busy': '他の人が画面を共有中です。司会者が許可すると、同時に共有できます。',
    'reconnect.banner': '接続が切れました。再接続しています…',
    'notice.reconnected': '再接続しました。',
    'people.reconnecting': '再接続中…',
    'grid.pages': '参加者のページ',
    'grid.prev': '前のページ',
    'grid.next': '次のページ',
    'grid.page': '{page} / {pages}',
    'quality.good': '接続状態: 良好',
    'quality.fair': '接続状態: やや不安定',
    'quality.poor': '接続状態: 不安定',
    'quality.stalled': '回線が不安定なため、映像を一時停止しています',
    'notice.ownPoor': 'あなたの回線が不安定です。音声を優先し、映像の品質を下げています。',
    'ctl.settings': '設定',
    'devices.heading': 'カメラ・マイク・スピーカー',
    'devices.camera': 'カメラ',
    'devices.mic': 'マイク',
    'devices.speaker': 'スピーカー',
    'devices.speakerDefault': '既定のスピーカー',
    'devices.layout': '表示',
    'devices.layoutGrid': 'タイル(全員を並べる)',
    'devices.layoutSpeaker': 'スピーカー(話している人を大きく)',
    'devices.close': '閉じる',
    'devices.failed': 'この機器を使えませんでした。',
    'error.code.unknown': 'サーバーでエラーが発生しました。',
    'error.code.password_required': 'この会議にはパスワードが必要です。',
    'error.code.wrong_password': 'パスワードが違います。',
    'error.code.sign_in_required': 'この会議には職員IDでサインインした人だけが参加できます。',
    'error.code.too_many_tracks': '送信する映像・音声の数がサーバーの上限を超えました。',
    'error.signIn': 'サインイン',
    'prejoin.passwordLabel': 'パスワード',
    'prejoin.passwordNeeded': 'この会議にはパスワードが必要です。主催者から聞いたパスワードを入力してください。',
    'prejoin.passwordWrong': 'パスワードが違います。もう一度入力してください。',
    'prejoin.passwordTooMany': '間違いが続いたため、しばらく待ってからもう一度お試しください。',
    'prejoin.signedInAs': '{name} としてサインインしています(名前は職員名簿のものを使います)。',
    'signin.heading': '職員IDでサインイン',
    'signin.text': 'サインインすると、職員名簿の名前で会議に参加できます。',
    'signin.user': '職員ID',
    'signin.password': 'パスワード',
    'signin.button': 'サインイン',
    'signin.busy': '確認しています…',
    'signin.wrong': '職員IDまたはパスワードが違います。',
    'signin.unavailable': '職員名簿のサーバーに接続できません。しばらくしてからもう一度お試しください。',
    'signin.tooMany': '失敗が続いたため、しばらく待ってからもう一度お試しください。',
    'signin.failed': 'サインインできませんでした。',
    'signin.as': '{name} としてサインインしています。',
    'signin.moderator': '会議では司会者になります。',
    'signin.out': 'サインアウト',
    'broadcast.heading': 'エンコーダーから配信する',
    'broadcast.text': 'OBSなどのWHIP対応エンコーダーに、次のURLとトークン(Bearer)を設定してください。',
    'broadcast.room': '配信する会議名',
    'broadcast.button': 'トークンを発行',
    'broadcast.url': 'WHIPのURL',
    'broadcast.token': 'トークン',
    'broadcast.expires': '有効期限: {time}',
    'broadcast.failed': 'トークンを発行できませんでした。',
    'error.close.1008': '通信に問題があったため、サーバーが接続を切りました。',
    'error.close.1009': 'サーバーが受け取れない大きさのデータを送ったため、接続が切れました。',
    'error.close.1001': 'サーバーが停止または再起動しています。',
    'error.details': '詳細: {details}',
  },
  en: {
    'app.name': 'kaigi',
    'app.tagline': 'Video meetings for your internal network',
    'lang.label': 'Language',
    'sentence.sep': ' ',

    'landing.title': 'kaigi — video meetings',
    'landing.heading': 'Video meetings',
    'landing.lead': 'Nothing to install. Meet in your browser, entirely inside your own network.',
    'landing.create.heading': 'Start a new meeting',
    'landing.create.text': 'Get a meeting name chosen for you and start right away.',
    'landing.create.button': 'Create meeting',
    'landing.join.heading': 'Join a meeting',
    'landing.join.text': 'Enter a meeting name or paste a meeting link.',
    'landing.join.label': 'Meeting name',
    'landing.join.placeholder': 'e.g. soumu-ka',
    'landing.join.button': 'Go to meeting',
    'landing.join.hint': 'Letters, digits and - _ . (up to 64 characters).',
    'landing.invalid.empty': 'Please enter a meeting name.',
    'landing.invalid.chars': 'The meeting name contains characters that cannot be used. Use letters, digits and - _ . only (not starting with .).',
    'landing.invalid.length': 'The meeting name must be at most 64 characters.',
    'landing.footer': 'All traffic stays on this server.',

    'room.title': '{room} — kaigi',
    'room.label': 'Meeting',
    'room.copyLink': 'Copy link',
    'room.linkCopied': 'Meeting link copied.',
    'room.linkCopyFailed': 'Could not copy the link: {link}',
    'room.count': '{n} in the meeting',
    'room.home': 'Home',

    'prejoin.heading': 'Get ready',
    'prejoin.text': 'Check your camera and microphone, then join.',
    'prejoin.nameLabel': 'Name',
    'prejoin.namePlaceholder': 'e.g. Taro Yamada',
    'prejoin.nameRequired': 'Please enter your name.',
    'prejoin.join': 'Join',
    'prejoin.joining': 'Connecting…',
    'prejoin.micLevel': 'Microphone level',
    'prejoin.previewOff': 'Your camera is off',
    'prejoin.starting': 'Starting camera and microphone…',
    'prejoin.receiveOnly': 'You can still join without camera and microphone (watch and listen only).',

    'media.denied': 'Camera and microphone access was denied. Allow it in your browser’s address bar settings.',
    'media.notFound': 'No camera or microphone was found.',
    'media.inUse': 'Your camera or microphone is in use by another application.',
    'media.insecure': 'This page is not served over a secure connection (https), so the camera and microphone cannot be used.',
    'media.failed': 'The camera and microphone could not be started.',
    'media.noVideo': 'No camera available (joining with microphone only).',
    'media.noAudio': 'No microphone available (joining with camera only).',

    'ctl.micMute': 'Mute microphone',
    'ctl.micUnmute': 'Unmute microphone',
    'ctl.camOff': 'Turn camera off',
    'ctl.camOn': 'Turn camera on',
    'ctl.leave': 'Leave',
    'ctl.people': 'Participants',
    'ctl.noMic': 'No microphone',
    'ctl.noCam': 'No camera',
    'ctl.controls': 'Meeting controls',

    'people.heading': 'Participants',
    'people.you': '(you)',
    'people.micMuted': 'Microphone muted',
    'people.camOff': 'Camera off',
    'people.close': 'Close participant list',
    'grid.label': 'Participant videos',

    'notice.joined': '{name} joined.',
    'notice.left': '{name} left.',
    'notice.enableSound': 'Click here to turn on sound',
    'notice.close': 'Close',

    'left.heading': 'You left the meeting',
    'left.text': 'You can come back any time with the same link.',
    'left.rejoin': 'Rejoin',

    'error.heading': 'Could not connect',
    'error.lostHeading': 'Connection lost',
    'error.lost': 'The connection to the server was lost. Check your network, then reconnect.',
    'error.reconnect': 'Reconnect',
    'error.retry': 'Try again',
    'error.unreachable': 'Could not reach the server. Check your network connection.',
    'error.mediaFailed': 'Audio and video could not be connected. Check the network and firewall settings.',
    'error.code.bad_request': 'The server could not process a request. Please reload the page.',
    'error.code.invalid_room': 'This meeting name cannot be used. Use letters, digits and - _ . only, up to 64 characters.',
    'error.code.not_joined': 'That action needs you to be in the meeting.',
    'error.code.already_joined': 'You are already in the meeting.',
    'error.code.unsupported_version': 'This page does not match the server version. Please reload the page.',
    'error.code.room_full': 'This meeting is full. Please try again later.',
    'error.code.unauthorized': 'You are not allowed to join this meeting. Ask the organiser for the correct link.',
    'error.code.bad_sdp': 'The server did not accept the audio/video settings.',
    'error.code.server_busy': 'The server is busy or under maintenance. Please try again later.',
    'ctl.chat': 'Chat',
    'ctl.raiseHand': 'Raise hand',
    'ctl.lowerHand': 'Lower hand',
    'chat.heading': 'Chat',
    'chat.close': 'Close chat',
    'chat.label': 'Message',
    'chat.placeholder': 'Type a message (Enter sends)',
    'chat.send': 'Send',
    'chat.empty': 'No messages yet.',
    'people.handRaised': 'Hand raised',
    'people.moderator': 'Moderator',
    // Admin page
    'admin.title': 'Administration — kaigi',
    'admin.heading': 'Administration',
    'admin.keyLabel': 'Admin API key',
    'admin.unlock': 'Open',
    'admin.lock': 'Close',
    'admin.keyRefused': 'The key was refused: {why}',
    'admin.health': 'Server',
    'admin.status': 'Status',
    'admin.statusOk': 'running',
    'admin.statusDraining': 'shutting down',
    'admin.version': 'Version',
    'admin.uptime': 'Up for',
    'admin.minutes': '{n} min',
    'admin.roomsCount': 'Rooms',
    'admin.participants': 'Participants',
    'admin.viewers': 'Viewers',
    'admin.workers': 'Participants per worker',
    'admin.rooms': 'Rooms',
    'admin.noRooms': 'No room is in use.',
    'admin.room': 'Room',
    'admin.onAir': 'On air',
    'admin.recordingNow': 'Recording',
    'admin.yes': 'yes',
    'admin.show': 'Details',
    'admin.record': 'Record',
    'admin.stopRecording': 'Stop recording',
    'admin.end': 'End',
    'admin.endConfirm': 'End the meeting "{room}" for everyone?',
    'admin.roomHeading': '{room} ({viewers} viewers)',
    'admin.remove': 'Remove',
    'admin.removeConfirm': 'Remove {name}?',
    'admin.recordings': 'Recordings',
    'admin.noRecordings': 'No recordings yet.',
    'admin.file': 'File',
    'admin.state': 'State',
    'admin.complete': 'complete',
    'admin.size': 'Size',
    'admin.started': 'Started',
    'admin.download': 'Download',
    'admin.done': 'Done.',
    'admin.failed': 'Failed: {why}',

    // Viewer page (broadcasts)
    'watch.title': '{room} broadcast — kaigi',
    'watch.label': 'Broadcast',
    'watch.liveBadge': 'LIVE',
    'watch.start': 'Watch',
    'watch.notStarted': 'The broadcast has not started yet. It will play by itself when it starts.',
    'watch.ready': 'The broadcast is on. Press Watch.',
    'watch.checking': 'Checking the broadcast…',
    'watch.connecting': 'Connecting…',
    'watch.playing': 'Playing',
    'watch.ended': 'The broadcast has ended.',
    'watch.retrying': 'The connection was lost. Reconnecting…',
    'watch.unauthorized': 'You may not watch this broadcast. Check the link you were given.',
    'watch.password': 'Password',
    'watch.passwordNeeded': 'This broadcast has a password. Enter it and press Watch.',
    'watch.passwordWrong': 'Wrong password.',
    'watch.tooMany': 'Too many wrong tries. Please wait a moment and try again.',
    'watch.failed': 'The broadcast could not be played. Please try again later.',
    'watch.volume': 'Volume',
    'watch.mute': 'Mute',
    'watch.unmute': 'Unmute',
    'watch.fullscreen': 'Full screen',
    'watch.secondPicture': 'Second picture (a sign-language interpreter, say)',
    'watch.note': 'This broadcast stays inside the office network.',
    'people.live': 'On air',
    'people.setLive': 'Put on air',
    'people.setLiveName': 'Put {name} on air for the broadcast viewers',
    'people.addLive': 'Add to air',
    'people.addLiveName': 'Show {name} beside the broadcast (a sign-language interpreter, say)',
    'people.unsetLive': 'Take off air',
    'people.unsetLiveName': 'Take {name} off air (back to the first publisher)',
    'people.mute': 'Mute',
    'people.muteName': 'Mute {name}',
    'people.remove': 'Remove',
    'people.removeName': 'Remove {name} from the meeting',
    'mod.heading': 'Moderator controls',
    'mod.lock': 'Lock meeting (no new participants)',
    'mod.lobby': 'Waiting room (admit each new participant)',
    'mod.end': 'End meeting for all',
    'mod.endConfirm': 'End the meeting for everyone?',
    'lobby.heading': 'Waiting room',
    'lobby.admit': 'Admit',
    'lobby.admitName': 'Admit {name}',
    'lobby.deny': 'Deny',
    'lobby.denyName': 'Deny {name}',
    'notice.handRaised': '{name} raised their hand.',
    'notice.mutedByModerator': '{by} muted your microphone. Only you can unmute it.',
    'notice.videoOffByModerator': '{by} turned your camera off. Only you can turn it back on.',
    'notice.lobbyRequest': '{name} is waiting to join.',
    'notice.moderator': 'You are now a moderator.',
    'notice.locked': 'The meeting is locked.',
    'notice.unlocked': 'The meeting is unlocked.',
    'waiting.heading': 'Waiting for the moderator',
    'waiting.text': 'Please wait: a moderator will let you in.',
    'left.removedHeading': 'You were removed from the meeting',
    'left.removedText': '{by} (moderator) removed you from the meeting.',
    'left.endedHeading': 'The meeting has ended',
    'left.endedText': '{by} (moderator) ended the meeting.',
    'left.deniedHeading': 'You were not admitted',
    'left.deniedText': 'The moderator did not let you in.',
    'error.code.room_locked': 'A moderator has locked this meeting.',
    'error.code.rate_limited': 'You are sending messages too fast. Wait a moment and try again.',
    'error.code.forbidden': 'Only a moderator can do that.',
    'error.code.not_found': 'That person is no longer in the meeting.',
    'ctl.share': 'Share screen',
    'ctl.stopShare': 'Stop sharing',
    'share.region': 'Shared screen',
    'share.by': "{name}'s screen",
    'share.mine': 'You are sharing your screen',
    'share.failed': 'Your screen could not be shared.',
    'notice.sharing': '{name} started sharing their screen.',
    'mod.shares': 'Allow several screen shares at once',
    'error.code.share_busy': 'Someone else is sharing. A moderator can allow more than one share at once.',
    'reconnect.banner': 'Connection lost. Reconnecting…',
    'notice.reconnected': 'Reconnected.',
    'people.reconnecting': 'reconnecting…',
    'grid.pages': 'Participant pages',
    'grid.prev': 'Previous page',
    'grid.next': 'Next page',
    'grid.page': '{page} / {pages}',
    'quality.good': 'Connection: good',
    'quality.fair': 'Connection: fair',
    'quality.poor': 'Connection: poor',
    'quality.stalled': 'The network is weak: video is paused',
    'notice.ownPoor': 'Your network is weak. Audio comes first; video quality is lowered.',
    'ctl.settings': 'Settings',
    'devices.heading': 'Camera, microphone, speaker',
    'devices.camera': 'Camera',
    'devices.mic': 'Microphone',
    'devices.speaker': 'Speaker',
    'devices.speakerDefault': 'Default speaker',
    'devices.layout': 'Layout',
    'devices.layoutGrid': 'Tiles (everyone side by side)',
    'devices.layoutSpeaker': 'Speaker (the person speaking large)',
    'devices.close': 'Close',
    'devices.failed': 'This device could not be used.',
    'error.code.unknown': 'The server reported an error.',
    'error.code.password_required': 'This meeting has a password.',
    'error.code.wrong_password': 'Wrong password.',
    'error.code.sign_in_required': 'Only staff signed in with their staff ID can join this meeting.',
    'error.code.too_many_tracks': 'You are sending more audio and video than the server allows.',
    'error.signIn': 'Sign in',
    'prejoin.passwordLabel': 'Password',
    'prejoin.passwordNeeded': 'This meeting has a password. Enter the one the organiser gave you.',
    'prejoin.passwordWrong': 'Wrong password. Please try again.',
    'prejoin.passwordTooMany': 'Too many wrong tries. Please wait a moment and try again.',
    'prejoin.signedInAs': 'Signed in as {name} (your name comes from the staff directory).',
    'signin.heading': 'Sign in with your staff ID',
    'signin.text': 'Signed in, you join meetings under your name from the staff directory.',
    'signin.user': 'Staff ID',
    'signin.password': 'Password',
    'signin.button': 'Sign in',
    'signin.busy': 'Checking…',
    'signin.wrong': 'Wrong staff ID or password.',
    'signin.unavailable': 'The staff directory cannot be reached. Please try again shortly.',
    'signin.tooMany': 'Too many failed tries. Please wait a moment and try again.',
    'signin.failed': 'Could not sign in.',
    'signin.as': 'Signed in as {name}.',
    'signin.moderator': 'You moderate the meetings you join.',
    'signin.out': 'Sign out',
    'broadcast.heading': 'Broadcast from an encoder',
    'broadcast.text': 'Give your WHIP encoder (OBS and others) this URL and token (Bearer).',
    'broadcast.room': 'Room to broadcast to',
    'broadcast.button': 'Get a token',
    'broadcast.url': 'WHIP URL',
    'broadcast.token': 'Token',
    'broadcast.expires': 'Valid until {time}',
    'broadcast.failed': 'Could not get a token.',
    'error.close.1008': 'The server closed the connection because of a protocol problem.',
    'error.close.1009': 'The connection was closed because a message was too large.',
    'error.close.1001': 'The server is shutting down or restarting.',
    'error.details': 'Details: {details}',
  },
};

/** @typedef {keyof typeof strings.ja} StringKey */

/** Language names as shown in the switch (each in its own language). */
export const languageNames = /** @type {const} */ ({ ja: '日本語', en: 'English' });

const STORAGE_KEY = 'kaigi.lang';

/** @type {Lang} */
let current = initialLang();

/** @returns {Lang} */
function initialLang() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === 'ja' || saved === 'en') return saved;
  } catch { /* storage may be disabled */ }
  return detectLang(navigator.languages || [navigator.language]);
}

/**
 * The language for a browser's language list: Japanese when the first
 * language is Japanese, otherwise English.
 * @param {readonly string[]} langs
 * @returns {Lang}
 */
export function detectLang(langs) {
  const first = (langs[0] || '').toLowerCase();
  return first === 'ja' || first.startsWith('ja-') ? 'ja' : 'en';
}

/** @returns {Lang} */
export function lang() { return current; }

/**
 * The string for `key` in the current language, with `{name}` placeholders
 * replaced from `params`.
 * @param {StringKey} key
 * @param {Record<string, string | number>} [params]
 * @returns {string}
 */
export function t(key, params) {
  let s = strings[current][key] ?? strings.en[key] ?? key;
  if (params) s = s.replace(/\{(\w+)\}/g, (m, p) => (p in params ? String(params[p]) : m));
  return s;
}

/**
 * Whether `key` names a string (for keys built at run time, e.g. error codes).
 * @param {string} key
 * @returns {key is StringKey}
 */
export function hasKey(key) { return key in strings.en; }

/**
 * Fill every element under `root` that names a key.
 * @param {ParentNode} [root]
 */
export function applyStrings(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(/** @type {StringKey} */ (el.getAttribute('data-i18n')));
  }
  for (const attr of ['aria-label', 'title', 'placeholder']) {
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      el.setAttribute(attr, t(/** @type {StringKey} */ (el.getAttribute(`data-i18n-${attr}`))));
    }
  }
}

/**
 * Switch the language: remember it, update `<html lang>` and every marked
 * element, then tell the page (`langchange` on document) so that it can
 * redraw strings it builds itself.
 * @param {Lang} next
 * @param {{remember?: boolean}} [opts]
 */
export function setLang(next, opts = {}) {
  current = next;
  if (opts.remember !== false) {
    try { localStorage.setItem(STORAGE_KEY, next); } catch { /* ignore */ }
  }
  document.documentElement.lang = next;
  applyStrings();
  document.dispatchEvent(new CustomEvent('langchange', { detail: next }));
}

/**
 * Fill a `<select>` with the languages and keep it in step with the
 * current one. The select's accessible name comes from its `<label>`,
 * which carries `data-i18n="lang.label"`.
 * @param {HTMLSelectElement} select
 */
export function bindLanguageSelect(select) {
  select.replaceChildren();
  for (const code of /** @type {Lang[]} */ (['ja', 'en'])) {
    const opt = document.createElement('option');
    opt.value = code;
    opt.lang = code;
    opt.textContent = languageNames[code];
    select.append(opt);
  }
  select.value = current;
  select.addEventListener('change', () => {
    setLang(select.value === 'ja' ? 'ja' : 'en');
  });
  document.addEventListener('langchange', () => { select.value = current; });
}

/** Put the current language into the page once, at start-up. */
export function initStrings() {
  setLang(current, { remember: false });
}
