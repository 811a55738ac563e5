namespace StableLayers.Judges.Captions;

/// <summary>
/// The caption instructions of diffusers' QwenImageLayeredPipeline (image_caption_prompt_en / image_caption_prompt_cn,
/// used by get_image_caption when no prompt is given), split into the chat roles an OpenAI-compatible server takes:
/// the template's system turn, and its user turn, whose text is followed by the image (the template's vision
/// placeholder sits at the end of the user turn). The texts are the reference's, byte for byte, line breaks included
/// (its source wraps lines inside triple-quoted strings, so some sentences break mid-way; the model was used that way).
/// </summary>
public static class CaptionInstructions
{
    public const string System = "You are a helpful assistant.";

    public const string English = "# Image Annotator\nYou are a professional\nimage annotator. Please write an image caption based on the input image:\n1. Write the caption using natural,\ndescriptive language without structured formats or rich text.\n2. Enrich caption details by including: \n - Object\nattributes, such as quantity, color, shape, size, material, state, position, actions, and so on\n - Vision Relations\nbetween objects, such as spatial relations, functional relations, possessive relations, attachment relations, action\nrelations, comparative relations, causal relations, and so on\n - Environmental details, such as weather, lighting,\ncolors, textures, atmosphere, and so on\n - Identify the text clearly visible in the image, without translation or\nexplanation, and highlight it in the caption with quotation marks\n3. Maintain authenticity and accuracy:\n - Avoid\ngeneralizations\n - Describe all visible information in the image, while do not add information not explicitly shown in\nthe image\n";

    public const string Chinese = "# 图像标注器\n你是一个专业的图像标注器。请基于输入图像，撰写图注:\n1.\n使用自然、描述性的语言撰写图注，不要使用结构化形式或富文本形式。\n2. 通过加入以下内容，丰富图注细节：\n - 对象的属性：如数量、颜色、形状、大小、位置、材质、状态、动作等\n -\n对象间的视觉关系：如空间关系、功能关系、动作关系、从属关系、比较关系、因果关系等\n - 环境细节：例如天气、光照、颜色、纹理、气氛等\n - 文字内容：识别图像中清晰可见的文字，不做翻译和解释，用引号在图注中强调\n3.\n保持真实性与准确性：\n - 不要使用笼统的描述\n -\n描述图像中所有可见的信息，但不要加入没有在图像中出现的内容\n";

    /// <summary>The reference's max_new_tokens for a caption.</summary>
    public const int MaxOutputTokens = 512;

    public static string For(CaptionLanguage language) => language == CaptionLanguage.English ? English : Chinese;
}

/// <summary>Which of the reference's two caption instructions to send (its pipeline defaults to Chinese: use_en_prompt=False).</summary>
public enum CaptionLanguage
{
    Chinese,
    English,
}
