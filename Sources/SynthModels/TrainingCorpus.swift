/// A small English text, written for HiFC, from which `SynthTokenizer` learns its BPE merges.
/// It only needs to be ordinary enough that common words become single tokens.
enum TrainingCorpus {
    static let text = """
        The river ran past the old mill and under the stone bridge, where the children of the town \
        gathered every evening to watch the boats. In the summer the water was low and clear, and you \
        could see the fish moving between the rocks. In the winter it rose and turned brown, and the \
        people who lived near the bank kept sand bags by their doors.
        A small library stood on the corner of the market square. It had three rooms, two windows that \
        looked out on the square, and a reading table that was older than anyone could remember. The \
        librarian opened the door at nine in the morning and closed it at six in the evening, except on \
        Sundays, when the library was closed all day.
        What is the best way to learn a new language? Many teachers say that you should read every day, \
        speak with other people as often as you can, and not be afraid of making mistakes. Others think \
        that you should first study the grammar and only then try to use the words you have learned.
        The computer has a processor, memory, and storage. The processor runs the program, the memory \
        holds the data the program is working on, and the storage keeps the files when the power is off. \
        A modern solid state drive can read more than seven thousand megabytes per second, while the \
        memory of a graphics card can move thousands of gigabytes per second.
        She said that she would come back in the afternoon, but the train was late, and it was already \
        dark when she finally arrived. We made tea, talked about the weather and the news, and then \
        went to sleep, because we all had to get up early the next morning.
        There are 24 hours in a day, 7 days in a week, 52 weeks in a year, and about 365 days in a year. \
        In 2024 the meeting started at 10:30 and ended at 12:15; it cost $1,250 and 3.5% of the budget.
        "Would you like some more?" he asked. "Yes, please," she answered, "and could you also pass the \
        bread?" They laughed, and the conversation turned to the plans for the holiday: the mountains, \
        the sea, or a quiet week at home with books and long walks.
        Question: what does the model write next? Answer: it writes one token at a time, and each token \
        depends on all the tokens that came before it. This is why the key and value cache grows with \
        the length of the text, and why it matters where that cache is kept.
        """
}
