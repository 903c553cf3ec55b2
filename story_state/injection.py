"""Replies that speak to the bot instead of the story: prompt injection and role play.

Pure: text in, a reason out. Every writer backend gets only what moderation accepted, so a
reply caught here reaches no poll, caption or narration, whichever model writes.

A reply is matched after undoing the usual disguises: ``skeleton`` (NFKC, case folding,
zero-width and other hidden characters removed, accents dropped, look-alike Cyrillic, Greek
and full-width letters mapped to Latin), then once more with punctuation inside words removed
("ig.no-re") and spaced-out letters joined ("i g n o r e"). Patterns are written as people
type them and folded the same way, so "Игнорируй" in the source matches "Игнoрируй" typed
with a Latin o. In a pattern, a space stands for the gap between two words (spaces or
punctuation), ``~`` for an optional gap, ``%B``/``%E`` for a word's start and end and ``%S``
for the start of a clause (text start, or after punctuation, "please", "now" ...). Each
pattern also gives the words one of which any text it matches must hold (its needles, taken
from its first group); they are looked up first, so a reply pays only for the few patterns
it could match.

False positives cost as much as misses: story sense ("Mara ignores the captain's orders",
"the life-support system fails", "act two") must pass, so the patterns ask for the words
that only an instruction to a model uses ("previous instructions", "developer mode",
"SYSTEM:" at a clause start), and imperatives such as "act as" only where a clause starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from story_state.text import skeleton

REASON = "instructions to the bot"

_LETTER = r"[^\W\d_]"
_BOUNDS = {"%B": rf"(?<!{_LETTER})", "%E": rf"(?!{_LETTER}|['’])"}
_GAP, _MAYBE_GAP = r"[\W_]{1,4}", r"[\W_]{0,4}"
_START = (
    r"(?:^|[.!?;:>\])}\"'“”«»*\n|-])[\W_]{0,3}"
    r"(?:(?:please|pls|now|ok|okay|hey|so|then|and|bot|storybot|ai)[\W_]{1,4}){0,3}"
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_LETTERS = re.compile(r"[^\W\d_]+")
# ASCII that is no letter, as a space: ASCII text's words (_LETTERS) are then split, not
# searched (bytes.translate takes a table; str.translate looks each character up in a dict).
_NOT_LETTER = bytes(c if c < 128 and chr(c).isalpha() else 32 for c in range(256))


def _ascii_letters(text: str) -> list[str]:
    """The runs of letters of ASCII ``text`` (``_LETTERS``' words), as they are written."""
    return text.encode("ascii").translate(_NOT_LETTER).decode("ascii").split()


# Words too common to look for first: a needle is the rarest-looking word of a pattern's start.
_COMMON = frozenset(
    "a an the and or of to in on at is are be as for with you your me my it will can re u r".split()
)
_INNER_PUNCT = re.compile(rf"(?<={_LETTER})(?:[^\w\s]|_)+(?={_LETTER})")
_SPACED = re.compile(rf"(?<!{_LETTER}){_LETTER}(?:[\W_]{{1,3}}{_LETTER}(?!{_LETTER})){{2,}}")
# The same two, for ASCII text (most replies): a letter is [a-zA-Z], a search half the cost.
_INNER_PUNCT_ASCII = re.compile(r"(?<=[a-zA-Z])[^a-zA-Z0-9\s]+(?=[a-zA-Z])")
_SPACED_ASCII = re.compile(r"(?<![a-zA-Z])[a-zA-Z](?:[^a-zA-Z0-9]{1,3}[a-zA-Z](?![a-zA-Z])){2,}")
# Line breaks (and "\\n" typed out) end a clause: "...rules\\n\\nAssistant: ok".
_BREAK = re.compile(r"\\[nr]|[\r\n\u2028\u2029]+")

# English building blocks.
_VERB = "(?:ignore|disregard|forget|skip|override|overrule|bypass|discard|drop|abandon|neglect)"
_FILL = "(?:(?:all|any|and|of|the|your|my|our|these|those|this|every|such|it|that) )"
_PREV = "(?:previous|prior|above|preceding|foregoing|earlier|former|original|initial|system)"
_DIRECTIONS = (
    "(?:instructions?|prompts?|directions|directives?|guidelines|programming|training"
    "|constraints|guardrails)"
)
_MODE = (
    "(?:developer|dev|debug|admin|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|dan|sudo)"
)
_YOU_ARE = "(?:you are|you're|youre|you re|u r)"


def _ignore(verb: str, fill: str, adjective: str, noun: str) -> str:
    """'Ignore all previous instructions' in a language that puts the adjective either side."""
    return rf"%B{verb} {fill}{{0,3}}(?:{noun} {adjective}|(?:{adjective} ){{1,2}}{noun})%E"


_FAMILIES: dict[str, tuple[str, ...]] = {
    "ignore previous instructions": (
        # English
        rf"%B{_VERB} {_FILL}{{0,3}}(?:{_PREV} ){{1,2}}{_DIRECTIONS}%E",
        rf"%B{_VERB} {_FILL}{{0,3}}(?:everything|anything|all|whatever|what) "
        r"(?:(?:you (?:were|have been|got|was) )?(?:told|said|written|given|typed) )?"
        r"(?:above|before|so far|previously|earlier|until now|up to now)%E",
        rf"%B{_VERB} (?:the|all|everything) (?:(?:text|stuff|lines|words) )?"
        r"(?:above|before this)%E",
        rf"%B{_VERB} (?:(?:all|any|of) ){{0,2}}your (?:(?:previous|prior|original|initial|current"
        r"|system|hidden|safety) )?(?:instructions|programming|prompts?|guidelines|rules|training"
        r"|directives|constraints|filters)%E",
        # Spanish
        _ignore(
            "(?:ignora|ignore|ignoren|ignorar|ignorad|olvida|olvide|olviden|olvidar|olvidad"
            "|descarta|descarte|omite|omita|desestima|desecha|no hagas caso (?:a|de)"
            "|haz caso omiso (?:a|de))",
            "(?:(?:todas|todos|todo|las|los|tus|sus|mis|de|a|y|esas|estas|cualquier) )",
            "(?:anteriores|previas|previos|precedentes|de arriba|originales|iniciales"
            "|del sistema|dadas|recibidas)",
            "(?:instrucciones|instruccion|indicaciones|ordenes|reglas|directrices|directivas"
            "|consignas|comandos|prompts?)",
        ),
        r"%B(?:ignora|ignore|olvida|olvide|descarta) (?:todo )?lo (?:anterior|de arriba|previo)%E",
        # French
        _ignore(
            "(?:ignore|ignorez|ignorer|oublie|oubliez|oublier|ne tiens pas compte (?:de|des)"
            "|ne tenez pas compte (?:de|des)|fais abstraction (?:de|des)"
            "|faites abstraction (?:de|des)|laisse tomber|laissez tomber|efface|effacez)",
            "(?:(?:toutes|tous|tout|les|des|tes|vos|mes|de|d|et|ces|l) )",
            "(?:precedentes|precedents|anterieures|anterieurs|ci dessus|d avant|initiales"
            "|originales|du systeme|donnees|recues)",
            "(?:instructions|instruction|consignes|directives|regles|ordres|indications"
            "|commandes|prompts?)",
        ),
        r"%B(?:ignore|ignorez|oublie|oubliez) (?:tout )?ce qui "
        r"(?:precede|est au dessus|a ete dit)%E",
        # German
        r"%B(?:ignoriere|ignorier|ignoriert|ignorieren(?: sie)?|vergiss|vergesst|vergessen sie"
        r"|missachte|missachtet|missachten sie|uberspringe|verwirf|verwerfe|verwerfen sie)"
        r" (?:(?:alle|alles|die|deine|ihre|samtliche|samtlichen|jegliche|diese|und|von) ){0,3}"
        r"(?:vorherigen|vorigen|bisherigen|obigen|fruheren|vorangegangenen|vorangehenden"
        r"|vorhergehenden|ursprunglichen|alten|gegebenen|system)~"
        r"(?:anweisungen|anweisung|instruktionen|befehle|regeln|vorgaben|anordnungen"
        r"|richtlinien|aufforderungen|prompts?|direktiven)%E",
        r"%B(?:ignoriere|ignorieren sie|vergiss|vergessen sie) (?:alles|all das) "
        r"(?:oben|vorher|bisher|zuvor)%E",
        # Portuguese
        _ignore(
            "(?:ignore|ignora|ignorar|ignorem|esqueca|esquecer|esquecam|desconsidere"
            "|desconsidera|desconsiderar|despreze|descarte|descarta|deixe de lado)",
            "(?:(?:todas|todos|tudo|as|os|suas|tuas|minhas|de|e|essas|estas|quaisquer) )",
            "(?:anteriores|previas|precedentes|acima|originais|iniciais|do sistema|dadas"
            "|recebidas)",
            "(?:instrucoes|instrucao|ordens|regras|diretrizes|orientacoes|comandos|indicacoes"
            "|prompts?)",
        ),
        # Italian
        _ignore(
            "(?:ignora|ignorate|ignorare|ignori|dimentica|dimenticate|dimenticare|dimentichi"
            "|trascura|trascurate|tralascia|tralasciate|non considerare|scarta|scartate"
            "|non tenere conto (?:di|delle|degli|dei))",
            "(?:(?:tutte|tutti|tutto|le|gli|i|tue|tuoi|sue|mie|di|delle|degli|e|queste"
            "|quelle|qualsiasi) )",
            "(?:precedenti|anteriori|sopra|di sopra|originali|iniziali|di sistema|del sistema"
            "|date|ricevute)",
            "(?:istruzioni|istruzione|indicazioni|regole|direttive|ordini|comandi|prompts?"
            "|consegne)",
        ),
        r"%B(?:ignora|ignorate|dimentica|dimenticate) (?:tutto )?(?:quanto|cio che e) "
        r"(?:(?:detto|scritto) )?(?:sopra|prima)%E",
        # Dutch
        r"%B(?:negeer|vergeet) (?:(?:alle|al|de|je|jouw|uw|deze) ){0,3}(?:vorige|eerdere"
        r"|voorgaande|bovenstaande|oorspronkelijke) (?:instructies|opdrachten|regels"
        r"|aanwijzingen|prompts?)%E",
        # Russian
        r"%B(?:игнорируй|игнорируйте|проигнорируй|проигнорируйте|игнорировать|забудь|забудьте"
        r"|забыть|отбрось|отбросьте|отмени|отмените|не обращай внимания на"
        r"|не обращайте внимания на|пренебреги|пренебрегите|не учитывай|не учитывайте)"
        r" (?:(?:все|всё|эти|свои|твои|ваши|и|любые|всех) ){0,3}"
        r"(?:(?:предыдущие|предыдущих|прежние|прежних|прошлые|прошлых|предшествующие"
        r"|вышеуказанные|вышеизложенные|изначальные|исходные|системные|старые|ранее данные"
        r"|полученные|данные тебе|данные вам) ){1,2}"
        r"(?:инструкции|инструкций|указания|указаний|команды|команд|правила|правил|установки"
        r"|промпт|промпты|директивы|приказы|распоряжения)%E",
        r"%B(?:игнорируй|проигнорируй|забудь|забудьте) (?:всё|все) (?:что )?(?:было )?"
        r"(?:выше|сказано (?:выше|ранее)|написано выше)%E",
        # Polish, Swedish, Indonesian, Vietnamese, Greek
        r"%B(?:zignoruj|ignoruj|zignorujcie|zapomnij) (?:(?:wszystkie|wszelkie|swoje|twoje) ){0,2}"
        r"(?:poprzednie|wczesniejsze|powyzsze|dotychczasowe) (?:instrukcje|polecenia|komendy"
        r"|zasady)%E",
        r"%B(?:ignorera|glom) (?:(?:alla|dina|de) ){0,2}(?:tidigare|foregaende|ovanstaende) "
        r"(?:instruktioner|instruktionerna|kommandon|regler)%E",
        r"%B(?:abaikan|lupakan|acuhkan) (?:(?:semua|seluruh|segala) )?(?:instruksi|perintah"
        r"|petunjuk|arahan) (?:sebelumnya|terdahulu|di atas)%E",
        r"%Bbo qua (?:(?:moi|tat ca|toan bo|cac|nhung) ){0,2}(?:huong dan|chi dan|lenh|chi thi)"
        r" (?:truoc|ben tren|phia tren)",
        r"%B(?:αγνοησε|αγνοηστε|ξεχασε|ξεχαστε) (?:(?:ολες|ολα|τις|τα) ){0,2}(?:προηγουμενες"
        r"|προηγουμενα|παραπανω) (?:οδηγιες|εντολες)%E",
        # Turkish
        r"%B(?:onceki|yukaridaki|daha onceki) (?:(?:tum|butun|her|bu) )?(?:talimatlari?"
        r"|komutlari?|kurallari?|yonergeleri?) (?:yok say|gormezden gel|unut|dikkate alma)",
        # Japanese, Chinese, Korean, Hindi, Arabic: no spaces needed between words
        r"(?:以前|前|これまで|今まで|上記|先|過去|最初|元|既存|システム)の?~(?:すべての|全ての|全部の|あらゆる)?~"
        r"(?:指示|命令|指令|プロンプト|ルール|設定|インストラクション)~(?:を|は|も)?~"
        r"(?:すべて|全て|全部|一切|完全に)?~(?:無視|忘れ|破棄|無効|取り消)",
        r"(?:上記|以上|これまで|今まで)の?~(?:内容|文章|こと|会話)?~(?:を|は)~(?:すべて|全て|全部)?~無視",
        r"(?:忽略|无视|無視|忘记|忘記|忘掉|不要理会|不要理會|不理会|不理會|跳过|跳過|放弃|放棄"
        r"|抛开|拋開|丢弃|丟棄|撇开|撇開)~掉?~你?~的?~(?:所有|全部|一切)?~的?~"
        r"(?:之前|以前|先前|上面|上述|前面|此前|原来|原來|原有|原先|原始|最初|系统|系統|以上)~的?~"
        r"(?:所有|全部|一切)?~的?~(?:指令|指示|说明|說明|命令|提示|规则|規則|设定|設定|要求|指引)",
        r"(?:忽略|无视|無視|忘记|忘記)~(?:以上|上面|上述|之前)~(?:所有|全部|一切)?~的?~(?:内容|內容|文字)",
        r"이전의?~(?:모든)?~(?:지시|명령|지침|규칙|프롬프트)~(?:사항)?~(?:를|을)?~(?:모두)?~무시",
        r"पिछले~(?:सभी|सारे)?~निर्देश\w*~(?:को)?~(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल)",
        r"(?:تجاهل|انس|إنس)~(?:جميع|كل)?~(?:ال)?(?:تعليمات|أوامر|توجيهات)~(?:ال)?(?:سابقة|سابقه)",
        r"התעלם~(?:מכל|מ?כל)?~ה?(?:הוראות|הנחיות)~ה?(?:קודמות|קודמים)",
    ),
    "asks for its prompt or secrets": (
        r"%B(?:reveal|print|show|repeat|output|display|leak|dump|tell me|give me|share|post"
        r"|translate|spell out|write out|list|expose) (?:me )?(?:(?:all|of|the|every) ){0,2}"
        r"(?:your (?:(?:system|initial|original|hidden|secret|full|entire|exact|developer"
        r"|first|internal) ){0,2}(?:prompts?|instructions|programming|guidelines|configuration"
        r"|directives|rules)|the (?:system|initial|hidden|developer) (?:prompt|message"
        r"|instructions))%E",
        r"%B(?:(?:your|the) system~prompts?)%E",
        r"%S(?:print|repeat|output|show|reveal) (?:me )?(?:everything|all|the text"
        r"|the words|what(?:ever)? (?:is|was) (?:written|said)) (?:(?:written|said) )?above",
        r"%Srepeat after me%E",
        r"%B(?:(?:prompt|mensaje|instrucciones) del sistema)%E",
        r"%B(?:(?:dein|deinen|deine|ihr|ihren) system~prompts?)%E",
        r"%B(?:leak|reveal|post|print|show|give me|tell me|share|output|send me|dump) "
        r"(?:(?:the|your|my|an?|all) )?(?:admin (?:token|password)|api[\W_]?keys?"
        r"|access tokens?|openai[\W_]api[\W_]key|environment variables|env vars?)%E",
        r"(?:你的|您的)~(?:系统|系統)~提示|(?:系统|系統)~提示~(?:词|詞)|システム~プロンプト",
    ),
    "role marker": (
        r"%S(?:system|assistant|user|human|developer|sys|system prompt|system message"
        r"|system override|admin override|developer message)[\W_]{0,2}:",
    ),
    "prompt markup": (
        r"<\|\s?[\w\s]{1,24}\s?\|>",
        r"\[/?inst\]",
        r"<</?sys>>",
        r"#{2,}[\W_]{0,2}(?:instructions?|system|response|user|assistant|input|human|prompt)%E",
        r"\[\[?[\W_]{0,2}(?:system|admin|developer|sys|root|jailbreak|override)[^\]]{0,30}\]",
        r"\{\{?[\W_]{0,2}/?(?:system|user|assistant|prompt|sys)[\W_]{0,2}\}",
        r"</?\s?(?:system|assistant|user|human|instructions?|prompt|story_data|sys|inst)\s?>",
    ),
    "mode switch": (
        rf"%B(?:(?:enable|activate|enter|switch (?:on|to|into)|turn on|unlock|boot into"
        rf"|go into|engage|run in|initiate) (?:the )?{_MODE}~mode)%E",
        rf"%B{_MODE}~mode (?:is )?(?:now )?(?:enabled|activated|on|engaged|unlocked|active)%E",
        rf"%B(?:(?:{_YOU_ARE}|are you) (?:now )?(?:in|running in|operating in|switched to) "
        rf"{_MODE}~mode)%E",
        r"%Bdan~mode%E",
        r"%Bdo anything now%E",
        rf"%B(?:(?:{_YOU_ARE}|act as|pretend to be) (?:now )?(?:(?:a|an|the) )?dan)%E",
        rf"%B(?:(?:{_YOU_ARE}|you have been|you've been|you were) (?:(?:now|fully|officially) )?"
        r"jailbroken)%E",
        r"%Bjailbreak (?:mode|prompt)%E",
        r"%Bjailbreak (?:(?:the|this) )?(?:bot|model|assistant|llm|chatbot|yourself|you|gpt"
        r"|chatgpt|narrator|writer)%E",
        r"%Bmodo (?:desarrollador|programador|desenvolvedor|developpeur|dan|jailbreak"
        r"|sin restricciones|sin filtros|sem restricoes|sem filtros)%E",
        r"%Bmode (?:developpeur|dan|jailbreak|sans restrictions?|sans filtre)%E",
        r"%Bmodalita (?:sviluppatore|sviluppatori|dan|jailbreak|senza restrizioni|senza filtri)%E",
        r"%B(?:entwickler|dan|jailbreak|gott)~modus%E",
        r"%Bрежим~(?:разработчика|dan|без ограничений|джейлбрейка)%E",
        r"(?:開発者|デベロッパー|dan|脱獄)~モード|ジェイルブレイク",
        r"(?:开发者|開發者|开发人员|開發人員|越狱|越獄|dan)~模式",
    ),
    "persona change": (
        rf"%B(?:{_YOU_ARE} now)%E",
        r"%B(?:(?:you are|you're|youre) no longer) (?:a|an|the|bound|restricted|limited"
        r"|required)%E",
        r"%Bfrom now on~(?:you|your)%E",
        r"%B(?:you (?:must|will|shall|should|can) now)%E",
        r"%B(?:as an? (?:ai|artificial intelligence|large language|language) "
        r"(?:language )?model)%E",
        r"%S(?:act|behave|respond|answer|reply|speak|talk|pose) (?:as|like) "
        r"(?:(?:if|though|a|an|the|my|you|your) )?",
        r"%Spretend (?:to be|you are|you're|that you|that this|the story is|this is"
        r"|to have)%E",
        r"%Srole~play (?:as|that)%E",
        r"%B(?:your (?:new|real|actual|true|only) (?:instructions?|task|job|purpose|goal"
        r"|directives?|role|mission)) (?:is|are|will be|now)%E",
        r"%B(?:(?:ahora|desde ahora|a partir de ahora) (?:eres|seras|tu eres|vas a ser))%E",
        r"%S(?:actua|actue|actuen|finge|finja|aja|atue) (?:como|que eres|ser)%E",
        r"%B(?:(?:tu es|vous etes|t es) (?:maintenant|desormais|a present|dorenavant))%E",
        r"%B(?:a partir de maintenant|desormais|dorenavant) (?:tu|vous)%E",
        r"%S(?:agis|agissez|comporte toi|comportez vous|fais semblant|faites semblant"
        r"|joue le role|jouez le role) (?:comme|d etre|de|en tant que)%E",
        r"%B(?:(?:du bist|ihr seid) (?:jetzt|nun|ab sofort|ab jetzt|von nun an))%E",
        r"%B(?:(?:ab jetzt|ab sofort|von nun an) (?:bist du|wirst du|sollst du))%E",
        r"%S(?:tu so als|tue so als|verhalte dich wie|handle als|agiere als"
        r"|spiele die rolle)%E",
        r"%B(?:(?:voce|tu) (?:agora e|e agora|agora es|es agora))%E",
        r"%B(?:agora (?:voce|tu) (?:e|es|sera)|a partir de agora (?:voce|tu))%E",
        r"%B(?:(?:ora|adesso|da ora in poi|d ora in poi|da adesso) sei)%E",
        r"%S(?:agisci|agite|comportati|comportatevi|fingi|fingete|fai finta) "
        r"(?:come|da|di essere)%E",
        r"%B(?:теперь ты|ты теперь|отныне ты|с этого момента ты)%E",
        r"%S(?:притворись|представь что ты|веди себя как|действуй как|играй роль)%E",
        r"(?:あなた|君|きみ|お前)は~(?:今から|これから|いまから|今後)|として振る舞って|になりきって",
        r"你现在是|你現在是|(?:从|從)(?:现在|現在)(?:开始|開始|起)~你|假装你是|假裝你是",
    ),
    "new instructions": (
        r"%B(?:(?:new|updated|revised|real|actual|secret|hidden|additional|override) "
        r"(?:system )?(?:instructions?|directives?|prompt))[\W_]{0,3}:",
        r"%B(?:(?:here are|these are) (?:your|the|my) (?:new|updated|real|actual|true|secret"
        r"|hidden) (?:instructions?|directives?|rules|orders|commands))%E",
        r"%B(?:(?:follow|obey|execute) (?:your|my|these) (?:new|updated|real|actual|true|secret"
        r"|hidden) (?:instructions?|directives?|rules|orders|commands))%E",
        r"%Bnuevas (?:instrucciones|directivas|reglas)[\W_]{0,3}:",
        r"%Bnouvelles (?:instructions|consignes|directives)[\W_]{0,3}:",
        r"%Bneue (?:anweisungen|instruktionen|befehle|regeln)[\W_]{0,3}:",
        r"%Bnovas (?:instrucoes|ordens|regras|diretrizes)[\W_]{0,3}:",
        r"%Bnuove (?:istruzioni|regole|direttive)[\W_]{0,3}:",
        r"%Bновые (?:инструкции|указания|правила|команды)[\W_]{0,3}:",
        r"新しい~(?:指示|命令|指令|ルール|プロンプト)~:|新的?~(?:指令|指示|规则|規則)~:",
    ),
    "steers the poll or narration": (
        r"%B(?:(?:as|for|into|in) (?:(?:the|a|your) )?(?:(?:next|new|first|only|top) )?"
        r"(?:poll (?:options?|answers?|choices?)|options? in the (?:next )?poll))%E",
        r"%B(?:(?:narrate|output|print|say|write|respond|reply|answer) (?:with )?"
        r"(?:only|nothing but) (?:the )?(?:word|words|phrase|text))%E",
        r"%S(?:say|output|print|narrate|respond|reply|answer|type)(?: with)? "
        r"(?:only|just|nothing but|exactly|verbatim|the following)%E",
    ),
}


@dataclass(frozen=True)
class _Rule:
    family: str
    # A cheap look first: a text the rule matches holds one of these; as a whole word
    # when ``whole_words`` (the pattern puts word bounds around it), else anywhere.
    needles: tuple[str, ...]
    whole_words: bool
    strict: re.Pattern[str]  # for the folded text, words apart
    loose: re.Pattern[str] | None  # for spaced-out letters joined ("ignoreallprevious")


def _fold(source: str) -> str:
    """A pattern's words folded like the text; its regex syntax is ASCII and stays as written."""
    return _NON_ASCII.sub(lambda m: skeleton(m.group()), source)


def _head(source: str) -> str:
    """The group or words a folded pattern must start with ("" when it has none)."""
    body = source.removeprefix("%B").removeprefix("%S")
    depth, escaped, in_class, end = 0, False, False, 0
    for i, ch in enumerate(body):
        if escaped or in_class:
            escaped, in_class = False, in_class and ch != "]"
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            in_class = True
        elif ch in "()":
            depth += 1 if ch == "(" else -1
            end = end or (i + 1 if depth == 0 and body.startswith("(") else 0)
        elif ch == "|" and depth == 0:
            return f"({body})"  # alternatives at the top: the whole pattern, as one group
    if end:
        return "" if body[end : end + 1] in ("?", "*", "{") else body[:end]
    literal = re.match(r"[^\\()\[\]{}?*+|.^$%~ ]*(?: [^\\()\[\]{}?*+|.^$%~ ]+)*", body)
    head = literal.group() if literal else ""
    return head[:-1] if body[len(head) : len(head) + 1] in ("?", "*", "{") else head


def _expand(pattern: str, limit: int = 4000) -> list[str] | None:
    """Every text a simple pattern (words, ``(?:a|b)``, ``?``, gaps) matches; None if not simple."""
    pos = 0

    def alternation() -> list[str] | None:
        nonlocal pos
        options: list[str] = []
        while True:
            found = sequence()
            if found is None:
                return None
            options += found
            if pattern[pos : pos + 1] != "|":
                return options
            pos += 1

    def sequence() -> list[str] | None:
        nonlocal pos
        out = [""]
        while pos < len(pattern) and pattern[pos] not in "|)":
            ch = pattern[pos]
            if ch == "(":
                pos += 3 if pattern.startswith("(?:", pos) else 1
                item = alternation()
                if item is None or pattern[pos : pos + 1] != ")":
                    return None
                pos += 1
            elif ch in "[]{}*+\\.^$%":
                return None
            else:
                pos += 1
                item = [" ", ""] if ch == "~" else [ch]
            if pattern[pos : pos + 1] == "?":
                pos += 1
                item = [*item, ""]
            out = [a + b for a in out for b in item]
            if len(out) > limit:
                return None
        return out

    found = alternation()
    return found if found is not None and pos == len(pattern) else None


def _needles(source: str) -> tuple[tuple[str, ...], bool]:
    """Words one of which any text the folded ``source`` matches must contain, and whether
    it holds them as whole words."""
    head = _head(source)
    texts = _expand(head.replace("%B", "").replace("%E", ""))
    needles: set[str] = set()
    for text in texts or [""]:
        words: list[str] = _LETTERS.findall(text)
        if not words and source[:1] in "<[{#\\":
            return (source[1] if source[0] == "\\" else source[0],), False  # markup: its sign
        if not words:
            return ("",), False  # no simple start: always look
        rare = [w for w in words if w not in _COMMON] or words
        # The last long word of a phrase is its most telling ("enter dan mode": "mode").
        # (A loop, not next() over a generator, which mypyc fails to compile.)
        needle: str = max(rare, key=len)
        for word in reversed(rare):
            if len(word) >= 4:
                needle = word
                break
        needles.add(needle)
    start = source.removeprefix("%B").removeprefix("%S")
    after = start[len(head) :] if start.startswith(head) else "|"
    whole = start != source and (not after or after.startswith((" ", "%E", "[\\W_]")))
    if not whole:  # a needle inside another finds everything the longer one would
        needles = {n for n in needles if not any(o != n and o in n for o in needles)}
    return tuple(sorted(needles)), whole


def _compile(family: str, source: str) -> _Rule:
    folded = _fold(source)
    strict = folded
    for token, pattern in _BOUNDS.items():
        strict = strict.replace(token, pattern)
    strict = strict.replace(" ", _GAP).replace("~", _MAYBE_GAP).replace("%S", _START)
    loose = None
    if "%S" not in folded:
        loose = folded
        for token in ("%B", "%E", " ", "~"):
            loose = loose.replace(token, "")
    needles, whole = _needles(folded)
    return _Rule(
        family,
        needles,
        whole,
        re.compile(strict),
        re.compile(loose) if loose is not None else None,
    )


_RULES = tuple(
    _compile(family, source) for family, sources in _FAMILIES.items() for source in sources
)
_ALWAYS = frozenset(i for i, rule in enumerate(_RULES) if "" in rule.needles)
_BY_WORD: dict[str, set[int]] = {}
_BY_PART: dict[str, set[int]] = {}
for _index, _rule in enumerate(_RULES):
    for _needle in filter(None, _rule.needles):
        (_BY_WORD if _rule.whole_words else _BY_PART).setdefault(_needle, set()).add(_index)
_ASCII_PARTS = tuple((n, rules) for n, rules in _BY_PART.items() if n.isascii())


def _forms(text: str) -> tuple[list[str], list[str]]:
    """The text folded, and again with the disguises inside words undone; spaced-out runs."""
    if "\\" in text or "\n" in text or "\r" in text or "\u2028" in text or "\u2029" in text:
        text = _BREAK.sub(" . ", text)
    folded = skeleton(text).replace("’", "'")
    ascii = folded.isascii()
    joined = (_INNER_PUNCT_ASCII if ascii else _INNER_PUNCT).sub("", folded)
    runs: list[str] = []
    spaced = _SPACED_ASCII if ascii else _SPACED
    if spaced.search(joined) is not None:  # (rare: most replies have no spaced-out word)

        def join(match: re.Match[str]) -> str:
            run = re.sub(r"[\W_]+", "", match.group())
            runs.append(run)
            return run

        joined = spaced.sub(join, joined)
    return ([folded] if joined == folded else [folded, joined]), runs


def _candidates(forms: list[str], runs: list[str]) -> list[int]:
    """The rules whose needles the text holds, in the order they are written."""
    found = set(_ALWAYS)
    for form in forms:
        ascii = form.isascii()
        words = _ascii_letters(form) if ascii else _LETTERS.findall(form)
        for word in set(words):
            rules = _BY_WORD.get(word)
            if rules is not None:
                found.update(rules)
        parts = _ASCII_PARTS if ascii else _BY_PART.items()
        for needle, rules in parts:
            if needle in form:
                found.update(rules)
    for run in runs:  # letters joined: a whole word may now sit inside a longer one
        found.update(i for needle, rules in _BY_WORD.items() if needle in run for i in rules)
    return sorted(found)


def instructions_reason(text: str) -> str | None:
    """Why ``text`` reads as instructions to the bot (a stated reason), or None."""
    forms, runs = _forms(text)
    for index in _candidates(forms, runs):
        rule = _RULES[index]
        if any(rule.strict.search(form) for form in forms) or (
            rule.loose is not None and any(rule.loose.search(run) for run in runs)
        ):
            return f"{REASON} ({rule.family})"
    return None
